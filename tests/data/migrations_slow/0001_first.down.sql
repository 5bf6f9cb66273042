DROP TABLE slow_first;
