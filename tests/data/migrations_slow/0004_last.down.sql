DROP TABLE slow_last;
