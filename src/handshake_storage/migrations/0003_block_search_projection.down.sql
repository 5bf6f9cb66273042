-- Reverts 0003_block_search_projection.
DROP TABLE block_terms;
