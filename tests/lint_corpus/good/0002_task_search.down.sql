DROP TABLE task_terms;
