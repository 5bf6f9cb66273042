CREATE TABLE roles (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL
);

-- Seeding data belongs in its own migration.
INSERT INTO roles (id, name) VALUES ('admin', 'Administrator');
