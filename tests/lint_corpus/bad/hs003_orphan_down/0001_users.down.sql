-- A down migration whose up migration is missing.
DROP TABLE users;
