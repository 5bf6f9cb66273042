DROP TABLE slow_child;
DROP TABLE slow_parent;
