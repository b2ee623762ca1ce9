-- Placeholder that keeps the versions without gaps on branch wt-repl,
-- whose migration is 0012; at merge, the lead drops this file and
-- renumbers 0012 after the other branches' migrations.
SELECT 1;
