-- A derived table: recomputed from tasks by its builder, never migrated.

-- @rebuildable derived from=tasks,projects builder=task_terms
CREATE TABLE task_terms (
    project_id TEXT NOT NULL,
    term TEXT NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    occurrences BIGINT NOT NULL,
    PRIMARY KEY (project_id, term, task_id)
);

/* Block comments work too. */
-- @rebuildable index
CREATE INDEX idx_task_terms_task ON task_terms (task_id);
