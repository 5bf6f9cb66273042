DROP TABLE slow_fill;
