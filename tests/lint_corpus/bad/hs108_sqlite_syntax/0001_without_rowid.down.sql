DROP TABLE pairs;
