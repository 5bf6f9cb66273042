-- The database computes the timestamp, in a SQLite-only way.
CREATE TABLE events (
    id TEXT NOT NULL PRIMARY KEY,
    happened_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
