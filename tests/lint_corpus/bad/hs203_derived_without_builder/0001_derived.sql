-- Who rebuilds this table? The marker does not say.
-- @rebuildable derived from=roles
CREATE TABLE role_terms (
    role_id TEXT NOT NULL,
    term TEXT NOT NULL,
    PRIMARY KEY (role_id, term)
);
