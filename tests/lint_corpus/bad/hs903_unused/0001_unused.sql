-- lint: ignore HS106 body used to be JSONB; the suppression outlived it
CREATE TABLE payloads (id TEXT NOT NULL PRIMARY KEY, body TEXT NOT NULL);
