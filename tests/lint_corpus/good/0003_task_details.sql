-- The portable ALTER TABLE forms, a view, and an index rebuilt under a new name.

ALTER TABLE tasks ADD COLUMN notes TEXT;

ALTER TABLE tasks ADD COLUMN estimate_minutes BIGINT NOT NULL DEFAULT 0;

ALTER TABLE tasks RENAME COLUMN title TO summary;

DROP INDEX idx_tasks_project;

-- @rebuildable index
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id);

CREATE VIEW open_tasks AS
SELECT t.id, t.project_id, upper(t.summary) AS summary, coalesce(t.notes, '') AS notes
FROM tasks AS t
WHERE t.status = 'open';
