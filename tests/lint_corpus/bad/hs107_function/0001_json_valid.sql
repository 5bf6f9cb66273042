CREATE TABLE payloads (
    id TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL,
    CONSTRAINT ck_payloads_json CHECK (json_valid(body))
);
