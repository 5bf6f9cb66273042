-- @rebuildable index
CREATE INDEX CONCURRENTLY idx_pairs_b ON pairs (b);
