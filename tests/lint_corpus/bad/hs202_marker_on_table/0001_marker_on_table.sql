-- @rebuildable index
CREATE TABLE roles (id TEXT NOT NULL PRIMARY KEY);
