-- Deliberate, documented exceptions: each suppression names its rule and why.
-- Both statements still run on SQLite and PostgreSQL; the linter flags them
-- because the backends treat the types differently.

-- lint: ignore HS106 codes are 2-64 ASCII characters, validated by the application first
CREATE TABLE legacy_codes (
    code VARCHAR(64) NOT NULL PRIMARY KEY,
    label TEXT NOT NULL
);

CREATE TABLE legacy_scores (
    id TEXT NOT NULL PRIMARY KEY,
    score REAL -- lint: ignore HS106 imported scores are 4-byte floats on both sides
);
