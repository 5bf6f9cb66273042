-- The backfill cannot be undone; the down migration only removes what it added.
DELETE FROM tasks WHERE id LIKE 'welcome-%';
DELETE FROM projects WHERE id = 'inbox';
