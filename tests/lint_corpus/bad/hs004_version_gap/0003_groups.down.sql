DROP TABLE groups;
