-- 0002 is missing: the migrator refuses a sequence with gaps.
CREATE TABLE groups (id TEXT NOT NULL PRIMARY KEY);
