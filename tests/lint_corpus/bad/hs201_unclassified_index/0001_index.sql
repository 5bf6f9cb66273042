-- Looks up roles by name.
CREATE INDEX idx_roles_name ON roles (name);
