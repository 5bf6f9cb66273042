-- Saved as Latin-1: café
CREATE TABLE cafes (id TEXT NOT NULL PRIMARY KEY);
