DROP TABLE role_terms;
DROP TABLE roles;
