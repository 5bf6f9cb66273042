-- Upper-case letters in the description: the migrator refuses this name.
CREATE TABLE users (id TEXT NOT NULL PRIMARY KEY);
