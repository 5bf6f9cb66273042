-- Block search on the engines' own full-text indexes; replaces block_terms.
--
-- block_search is derived, never canonical: one row per block within the
-- engines' limits (its encoded word stream, in order), or several rows of
-- distinct words for a larger block (chunk 1, 2, ...). search.py computes
-- the words; the storage layer keeps the rows current in the same
-- transaction as every block write, and deleting a block (directly or by a
-- document or workspace cascade) deletes them.
--
-- fulltext=tokens declares the engine's full-text index over the words,
-- which each backend adapter materializes in its own way (SQLite: an FTS5
-- table with triggers; PostgreSQL: a GIN index on the tsvector). It is part
-- of this derived object: `handshake-storage indexes rebuild` drops and
-- recomputes both, `indexes verify` proves them, and `copy` rebuilds them on
-- the target instead of copying.

DROP TABLE block_terms;

-- @rebuildable derived from=blocks,documents builder=block_search fulltext=tokens
CREATE TABLE block_search (
    block_id TEXT NOT NULL REFERENCES blocks (id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    workspace_id TEXT NOT NULL,
    word_count INTEGER NOT NULL,
    tokens TEXT NOT NULL,
    PRIMARY KEY (block_id, chunk)
);
