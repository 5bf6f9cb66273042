-- The CHECK lost its right-hand side: neither dialect parses it.
CREATE TABLE counters (
    id TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL CHECK (value >)
);
