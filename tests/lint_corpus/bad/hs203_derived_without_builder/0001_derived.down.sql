DROP TABLE role_terms;
