CREATE TABLE slow_parent (id BIGINT NOT NULL PRIMARY KEY);

INSERT INTO slow_parent (id)
WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 100000)
SELECT n FROM seq;

-- The foreign key is checked when the migration commits.
CREATE TABLE slow_child (
    id BIGINT NOT NULL REFERENCES slow_parent (id) DEFERRABLE INITIALLY DEFERRED
);

INSERT INTO slow_child (id) SELECT id FROM slow_parent;
