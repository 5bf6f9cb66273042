"""Handshake Storage: one storage API over embedded SQLite and PostgreSQL.

    >>> from handshake_storage import open_database, WriteContext, NewWorkspace
    >>> with open_database("sqlite:///handshake.db") as db:   # doctest: +SKIP
    ...     db.run_migrations()
    ...     ws = db.create_workspace(WriteContext.human("ada"), NewWorkspace("Notes"))

Layout: ``database.py`` is the interface, ``models.py`` the types,
``errors.py`` the errors, ``migrations/`` + ``migrator.py`` the schema,
``backends/`` the adapters, ``cli.py`` the command line.
"""

from .database import Database, open_database
from .errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    GuardError,
    MigrationError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from .guard import DefaultStorageGuard, MutationMetadata, StorageGuard, WriteContext
from .models import (
    AccessMode,
    AiJob,
    Block,
    BlockUpdate,
    Canvas,
    CanvasEdge,
    CanvasGraph,
    CanvasNode,
    Document,
    EntityRef,
    JobMetrics,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    OperationType,
    PlannedOperation,
    PruneReport,
    SafetyMode,
    SearchHit,
    WorkflowNodeExecution,
    WorkflowRun,
    Workspace,
    WriteActorKind,
)

__version__ = "0.1.0"

__all__ = [
    "AccessMode",
    "AiJob",
    "AuthenticationError",
    "BackendUnavailableError",
    "Block",
    "BlockUpdate",
    "Canvas",
    "CanvasEdge",
    "CanvasGraph",
    "CanvasNode",
    "ConflictError",
    "CorruptDataError",
    "Database",
    "DefaultStorageGuard",
    "Document",
    "EntityRef",
    "GuardError",
    "JobMetrics",
    "JobState",
    "JobStatusUpdate",
    "MigrationError",
    "MutationMetadata",
    "NewAiJob",
    "NewBlock",
    "NewCanvas",
    "NewCanvasEdge",
    "NewCanvasNode",
    "NewDocument",
    "NewNodeExecution",
    "NewWorkspace",
    "NotFoundError",
    "OperationType",
    "PlannedOperation",
    "PruneReport",
    "SafetyMode",
    "SearchHit",
    "StorageError",
    "StorageGuard",
    "ValidationError",
    "WorkflowNodeExecution",
    "WorkflowRun",
    "Workspace",
    "WriteActorKind",
    "WriteContext",
    "open_database",
]
