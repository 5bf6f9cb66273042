CREATE TABLE slow_fill (n BIGINT NOT NULL);

INSERT INTO slow_fill (n)
WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 400000)
SELECT n FROM seq;

CREATE INDEX idx_slow_fill_n ON slow_fill (n);
