-- The block search projection: a derived table, never canonical data.
--
-- One row per (block, term): the casefolded Unicode word tokens of the
-- block's raw_content and how often each occurs. The storage layer keeps it
-- current in the same transaction as every block write; deleting a block
-- (directly or through a document or workspace cascade) deletes its rows.
-- `handshake-storage indexes rebuild block_terms` drops it and recomputes it
-- from the blocks with the builder named below. It is never copied between
-- databases: `copy` rebuilds it on the target.

-- @rebuildable derived from=blocks,documents builder=block_terms
CREATE TABLE block_terms (
    workspace_id TEXT NOT NULL,
    term TEXT NOT NULL,
    block_id TEXT NOT NULL REFERENCES blocks (id) ON DELETE CASCADE,
    occurrences BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, term, block_id)
);

-- Finds a block's rows on update and on cascading delete.
-- @rebuildable index
CREATE INDEX idx_block_terms_block ON block_terms (block_id);
