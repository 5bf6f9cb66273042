-- Content: workspaces, documents of blocks, canvases of nodes and edges.
--
-- Every content table carries the mutation traceability columns written by
-- the storage guard ("no silent edits"): who made the last change, under which
-- AI job and workflow, and the id of that edit event. An AI edit must name
-- its job (ck_*_ai_job).
--
-- Timestamps are written by the application as parameters; the defaults are
-- only a fallback. Ids are text UUIDs. Every index below is rebuildable: it is
-- marked with `-- @rebuildable index` and is dropped and recreated, never
-- copied (see handshake_storage.rebuildable).

CREATE TABLE workspaces (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_actor_kind TEXT NOT NULL,
    last_actor_id TEXT,
    last_job_id TEXT,
    last_workflow_id TEXT,
    edit_event_id TEXT NOT NULL,
    CONSTRAINT ck_workspaces_actor_kind CHECK (last_actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_workspaces_ai_job CHECK (last_actor_kind <> 'AI' OR last_job_id IS NOT NULL)
);

-- @rebuildable index
CREATE INDEX idx_workspaces_created ON workspaces (created_at, id);

CREATE TABLE documents (
    id TEXT NOT NULL PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_actor_kind TEXT NOT NULL,
    last_actor_id TEXT,
    last_job_id TEXT,
    last_workflow_id TEXT,
    edit_event_id TEXT NOT NULL,
    CONSTRAINT ck_documents_actor_kind CHECK (last_actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_documents_ai_job CHECK (last_actor_kind <> 'AI' OR last_job_id IS NOT NULL)
);

-- @rebuildable index
CREATE INDEX idx_documents_workspace ON documents (workspace_id, created_at, id);

CREATE TABLE blocks (
    id TEXT NOT NULL PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    raw_content TEXT NOT NULL,
    display_content TEXT NOT NULL,
    derived_content TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_actor_kind TEXT NOT NULL,
    last_actor_id TEXT,
    last_job_id TEXT,
    last_workflow_id TEXT,
    edit_event_id TEXT NOT NULL,
    CONSTRAINT ck_blocks_actor_kind CHECK (last_actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_blocks_ai_job CHECK (last_actor_kind <> 'AI' OR last_job_id IS NOT NULL)
);

-- @rebuildable index
CREATE INDEX idx_blocks_document_sequence ON blocks (document_id, sequence, id);

CREATE TABLE canvases (
    id TEXT NOT NULL PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_actor_kind TEXT NOT NULL,
    last_actor_id TEXT,
    last_job_id TEXT,
    last_workflow_id TEXT,
    edit_event_id TEXT NOT NULL,
    CONSTRAINT ck_canvases_actor_kind CHECK (last_actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_canvases_ai_job CHECK (last_actor_kind <> 'AI' OR last_job_id IS NOT NULL)
);

-- @rebuildable index
CREATE INDEX idx_canvases_workspace ON canvases (workspace_id, created_at, id);

-- `ordinal` keeps nodes and edges in the order they were stored.
CREATE TABLE canvas_nodes (
    id TEXT NOT NULL PRIMARY KEY,
    canvas_id TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    kind TEXT NOT NULL,
    position_x DOUBLE PRECISION NOT NULL,
    position_y DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_actor_kind TEXT NOT NULL,
    last_actor_id TEXT,
    last_job_id TEXT,
    last_workflow_id TEXT,
    edit_event_id TEXT NOT NULL,
    CONSTRAINT ck_canvas_nodes_actor_kind CHECK (last_actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_canvas_nodes_ai_job CHECK (last_actor_kind <> 'AI' OR last_job_id IS NOT NULL)
);

-- @rebuildable index
CREATE INDEX idx_canvas_nodes_canvas ON canvas_nodes (canvas_id, ordinal);

CREATE TABLE canvas_edges (
    id TEXT NOT NULL PRIMARY KEY,
    canvas_id TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    from_node_id TEXT NOT NULL REFERENCES canvas_nodes (id) ON DELETE CASCADE,
    to_node_id TEXT NOT NULL REFERENCES canvas_nodes (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_actor_kind TEXT NOT NULL,
    last_actor_id TEXT,
    last_job_id TEXT,
    last_workflow_id TEXT,
    edit_event_id TEXT NOT NULL,
    CONSTRAINT ck_canvas_edges_actor_kind CHECK (last_actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_canvas_edges_ai_job CHECK (last_actor_kind <> 'AI' OR last_job_id IS NOT NULL)
);

-- @rebuildable index
CREATE INDEX idx_canvas_edges_canvas ON canvas_edges (canvas_id, ordinal);

-- @rebuildable index
CREATE INDEX idx_canvas_edges_from ON canvas_edges (from_node_id);

-- @rebuildable index
CREATE INDEX idx_canvas_edges_to ON canvas_edges (to_node_id);
