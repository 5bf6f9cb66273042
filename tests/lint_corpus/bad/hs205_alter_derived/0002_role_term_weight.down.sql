ALTER TABLE role_terms DROP COLUMN weight;
