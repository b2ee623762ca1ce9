-- LFS lock ids never repeat. On SQLite this version rebuilt the table
-- with AUTOINCREMENT; on PostgreSQL the identity column of version 8
-- never repeated an id, so there is nothing to do.
SELECT 1;
