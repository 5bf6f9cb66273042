-- Reverts 0004_block_search_fulltext: back to the block_terms projection of
-- 0003, recomputed from the blocks when this file has run.
DROP TABLE block_search;

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
