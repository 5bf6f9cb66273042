DROP INDEX idx_pairs_b;
