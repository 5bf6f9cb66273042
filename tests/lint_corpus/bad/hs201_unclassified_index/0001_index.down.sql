DROP INDEX idx_roles_name;
