-- A data-only migration (no DDL in the same file): literal values only.

UPDATE tasks
SET status = CASE WHEN lower(status) = 'closed' THEN 'done' ELSE 'open' END
WHERE status <> lower(status);

UPDATE projects SET priority = CAST(abs(priority) AS SMALLINT) WHERE priority < 0;

INSERT INTO projects (id, name) VALUES ('inbox', 'Inbox') ON CONFLICT (id) DO NOTHING;

-- SQLite needs the WHERE before ON CONFLICT in INSERT ... SELECT.
INSERT INTO tasks (id, project_id, summary)
SELECT 'welcome-' || p.id, p.id, 'Welcome to ' || upper(substr(p.name, 1, 1)) || substr(p.name, 2)
FROM projects AS p
WHERE p.is_archived = FALSE
ON CONFLICT (id) DO NOTHING;

DELETE FROM tasks WHERE nullif(replace(summary, ' ', ''), '') IS NULL;
