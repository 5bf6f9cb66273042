-- Reverts 0001_content_tables: drops the content tables (their indexes go with them).
DROP TABLE canvas_edges;
DROP TABLE canvas_nodes;
DROP TABLE canvases;
DROP TABLE blocks;
DROP TABLE documents;
DROP TABLE workspaces;
