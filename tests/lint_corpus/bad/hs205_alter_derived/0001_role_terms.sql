CREATE TABLE roles (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL);

-- @rebuildable derived from=roles builder=role_terms
CREATE TABLE role_terms (
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    term TEXT NOT NULL,
    PRIMARY KEY (role_id, term)
);
