-- There is no 0001_users.down.sql next to this file.
CREATE TABLE users (id TEXT NOT NULL PRIMARY KEY);
