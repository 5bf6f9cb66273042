-- Reverts 0002_ai_jobs_and_workflows.
DROP TABLE workflow_node_executions;
DROP TABLE workflow_runs;
DROP TABLE ai_jobs;
