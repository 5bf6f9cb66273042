-- @rebuildable cache
CREATE TABLE role_cache (role_id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL);
