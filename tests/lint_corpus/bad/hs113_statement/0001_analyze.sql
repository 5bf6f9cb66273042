-- Planner statistics are the backend's business, not a migration's.
ANALYZE roles;
