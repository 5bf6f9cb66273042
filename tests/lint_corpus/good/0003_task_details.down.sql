DROP VIEW open_tasks;

DROP INDEX idx_tasks_project_status;

-- @rebuildable index
CREATE INDEX idx_tasks_project ON tasks (project_id, status);

ALTER TABLE tasks RENAME COLUMN summary TO title;

ALTER TABLE tasks DROP COLUMN estimate_minutes;

ALTER TABLE tasks DROP COLUMN notes;
