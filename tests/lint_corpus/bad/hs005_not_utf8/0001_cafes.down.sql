DROP TABLE cafes;
