-- A derived table is dropped and recreated, never altered.
ALTER TABLE role_terms ADD COLUMN weight BIGINT;
