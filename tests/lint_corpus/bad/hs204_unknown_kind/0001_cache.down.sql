DROP TABLE role_cache;
