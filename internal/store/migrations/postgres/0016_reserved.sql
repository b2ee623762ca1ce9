-- cpm schema, version 16: reserved on this branch for issue 24's tokens
-- migration (0016), which replaces this file at merge; it changes nothing,
-- so that 17 follows without a gap meanwhile.
SELECT 1;
