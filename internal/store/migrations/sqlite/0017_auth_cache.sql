-- cpm schema, version 17: the authentication cache's invalidation (the
-- PostgreSQL file of the same version). SQLite has no cache to invalidate:
-- a read there is a call into the page cache, and cpm-admin writes from
-- another process that could not notify. Nothing changes; the version
-- keeps both histories in step.
SELECT 1;
