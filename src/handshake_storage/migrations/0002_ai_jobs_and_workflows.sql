-- AI jobs and the durable workflows that run them.
--
-- Structured job fields (entity_refs, planned_operations, metrics, inputs,
-- outputs, payloads) are JSON documents stored as text so they round-trip
-- byte-for-byte on every backend. workflow_run_id on ai_jobs is a plain
-- reference (no foreign key): a run belongs to its job, not the reverse.

CREATE TABLE ai_jobs (
    id TEXT NOT NULL PRIMARY KEY,
    trace_id TEXT NOT NULL,
    workflow_run_id TEXT,
    job_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    error_message TEXT,
    protocol_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    capability_profile_id TEXT NOT NULL,
    access_mode TEXT NOT NULL,
    safety_mode TEXT NOT NULL,
    entity_refs TEXT NOT NULL DEFAULT '[]',
    planned_operations TEXT NOT NULL DEFAULT '[]',
    metrics TEXT NOT NULL DEFAULT '{}',
    job_inputs TEXT,
    job_outputs TEXT,
    is_pinned BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT ck_ai_jobs_status CHECK (status IN (
        'queued', 'running', 'stalled', 'awaiting_validation', 'awaiting_user',
        'completed', 'completed_with_issues', 'failed', 'cancelled', 'poisoned')),
    CONSTRAINT ck_ai_jobs_access_mode CHECK (
        access_mode IN ('analysis_only', 'preview_only', 'apply_scoped')),
    CONSTRAINT ck_ai_jobs_safety_mode CHECK (safety_mode IN ('strict', 'normal', 'experimental'))
);

-- Retention scans terminal jobs by age.
-- @rebuildable index
CREATE INDEX idx_ai_jobs_status_created ON ai_jobs (status, created_at, id);

-- @rebuildable index
CREATE INDEX idx_ai_jobs_trace ON ai_jobs (trace_id);

CREATE TABLE workflow_runs (
    id TEXT NOT NULL PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES ai_jobs (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    error_message TEXT,
    last_heartbeat TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT ck_workflow_runs_status CHECK (status IN (
        'queued', 'running', 'stalled', 'awaiting_validation', 'awaiting_user',
        'completed', 'completed_with_issues', 'failed', 'cancelled', 'poisoned'))
);

-- @rebuildable index
CREATE INDEX idx_workflow_runs_job ON workflow_runs (job_id);

-- Stalled-run detection: running runs by heartbeat age.
-- @rebuildable index
CREATE INDEX idx_workflow_runs_status_heartbeat ON workflow_runs (status, last_heartbeat);

CREATE TABLE workflow_node_executions (
    id TEXT NOT NULL PRIMARY KEY,
    workflow_run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    node_type TEXT NOT NULL,
    status TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    input_payload TEXT,
    output_payload TEXT,
    error_message TEXT,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT ck_workflow_node_executions_status CHECK (status IN (
        'queued', 'running', 'stalled', 'awaiting_validation', 'awaiting_user',
        'completed', 'completed_with_issues', 'failed', 'cancelled', 'poisoned'))
);

-- @rebuildable index
CREATE INDEX idx_workflow_node_executions_run ON workflow_node_executions (
    workflow_run_id, created_at, id
);
