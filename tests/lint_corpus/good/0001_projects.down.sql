-- Reverts 0001_projects.
DROP TABLE tasks;
DROP TABLE projects;
