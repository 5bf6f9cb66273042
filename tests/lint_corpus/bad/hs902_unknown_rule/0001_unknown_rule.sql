-- lint: ignore HS1O6 a typo for HS106 (letter O), so nothing is silenced
CREATE TABLE payloads (id TEXT NOT NULL PRIMARY KEY, body TEXT NOT NULL);
