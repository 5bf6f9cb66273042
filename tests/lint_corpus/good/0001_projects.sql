-- Portable schema: every type from the allow-list, defaults that are only a
-- fallback, checks built from portable functions, and classified indexes.

CREATE TABLE projects (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    "position" BIGINT NOT NULL DEFAULT 0,
    priority SMALLINT NOT NULL DEFAULT 3,
    budget DOUBLE PRECISION,
    seats INTEGER,
    is_archived BOOLEAN NOT NULL DEFAULT FALSE,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT ck_projects_name CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT ck_projects_name_trimmed CHECK (trim(name) = name),
    CONSTRAINT ck_projects_priority CHECK (priority IN (1, 2, 3, 4, 5))
);

-- The natural key: one project name per spelling, case-insensitively.
-- @rebuildable index
CREATE UNIQUE INDEX uq_projects_name ON projects (lower(name));

CREATE TABLE tasks (
    id TEXT NOT NULL PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES tasks (id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    due_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT ck_tasks_status CHECK (status IN ('open', 'done')),
    CONSTRAINT uq_tasks_title UNIQUE (project_id, title)
);

-- @rebuildable index
CREATE INDEX idx_tasks_project ON tasks (project_id, status);

-- Open tasks with a due date, for the reminder scan (a partial index).
-- @rebuildable index
CREATE INDEX IF NOT EXISTS idx_tasks_due ON tasks (due_at) WHERE status = 'open';
