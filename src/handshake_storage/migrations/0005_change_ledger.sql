-- The change ledger and sync bookkeeping (local-first sync, see docs/DESIGN.md).
--
-- Canonical tables, written by the application in the same transaction as
-- every API write (no triggers): `copy` carries them over and gives the
-- target a new replica id. They are replica-local bookkeeping, so sync
-- verification does not compare them between replicas. The replica id row
-- is made by the application right after migrating, or by the first write
-- (a generated id is data, not schema). Every index below is rebuildable.

-- This database's identity as a sync replica: one row, in slot 1 (so two
-- first writers racing to create it cannot make two).
CREATE TABLE sync_replica (
    slot BIGINT NOT NULL PRIMARY KEY,
    replica_id TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    copied_from TEXT
);

-- Per (origin, scope): the highest origin sequence number applied here. The
-- local origin's rows also carry the scope's hybrid logical clock and its
-- local position counter; updating that row serializes the scope's appends.
CREATE TABLE sync_counters (
    origin_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    hlc_wall BIGINT NOT NULL,
    hlc_counter BIGINT NOT NULL,
    PRIMARY KEY (origin_id, scope)
);

-- The ledger: one immutable change set per committed write, own or received.
CREATE TABLE sync_changes (
    origin_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    hlc TEXT NOT NULL,
    edit_event_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    job_id TEXT,
    workflow_id TEXT,
    operation TEXT NOT NULL,
    subject_table TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    status TEXT NOT NULL,
    written_at TIMESTAMP WITH TIME ZONE NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (origin_id, scope, seq),
    CONSTRAINT ck_sync_changes_actor_kind CHECK (actor_kind IN ('HUMAN', 'AI', 'SYSTEM')),
    CONSTRAINT ck_sync_changes_status CHECK (status IN ('applied', 'rejected'))
);

-- Export order: the order this replica applied a scope's change sets.
-- @rebuildable index
CREATE UNIQUE INDEX idx_sync_changes_position ON sync_changes (scope, pos);

-- The change sets that wrote one row (per-field merge, generations).
-- @rebuildable index
CREATE INDEX idx_sync_changes_subject ON sync_changes (subject_table, subject_id);

-- Provenance: from a row's edit_event_id to the change set that wrote it.
-- @rebuildable index
CREATE INDEX idx_sync_changes_event ON sync_changes (edit_event_id);

-- "What did AI job J change?"
-- @rebuildable index
CREATE INDEX idx_sync_changes_job ON sync_changes (job_id);

-- What each peer had applied after the last complete two-way sync with it.
CREATE TABLE sync_peers (
    peer_id TEXT NOT NULL,
    origin_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    synced_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (peer_id, origin_id, scope)
);

-- Per (origin, scope): change sets up to this sequence number were pruned.
CREATE TABLE sync_pruned (
    origin_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (origin_id, scope)
);

-- Every change that lost a conflict, with both sides' provenance.
CREATE TABLE sync_conflicts (
    id TEXT NOT NULL PRIMARY KEY,
    detected_at TIMESTAMP WITH TIME ZONE NOT NULL,
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    loser_event_id TEXT,
    winner_event_id TEXT,
    detail TEXT NOT NULL,
    restored_at TIMESTAMP WITH TIME ZONE,
    restored_event_id TEXT,
    CONSTRAINT ck_sync_conflicts_kind CHECK (
        kind IN ('field', 'stale_generation', 'deleted', 'rejected'))
);

-- @rebuildable index
CREATE INDEX idx_sync_conflicts_detected ON sync_conflicts (detected_at, id);
