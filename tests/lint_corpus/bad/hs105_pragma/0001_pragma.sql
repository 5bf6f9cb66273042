-- Connection settings belong to the SQLite adapter.
PRAGMA journal_mode = WAL;
