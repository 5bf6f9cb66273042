"""The enumerations the API accepts and stores (by their string values).

A low module of its own so that the table descriptions (``tables.py``) can
name each enum column's type without importing the models.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    STALLED = "stalled"
    AWAITING_VALIDATION = "awaiting_validation"
    AWAITING_USER = "awaiting_user"
    COMPLETED = "completed"
    COMPLETED_WITH_ISSUES = "completed_with_issues"
    FAILED = "failed"
    CANCELLED = "cancelled"
    POISONED = "poisoned"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.COMPLETED_WITH_ISSUES,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.POISONED,
    }
)


class AccessMode(StrEnum):
    ANALYSIS_ONLY = "analysis_only"
    PREVIEW_ONLY = "preview_only"
    APPLY_SCOPED = "apply_scoped"


class SafetyMode(StrEnum):
    STRICT = "strict"
    NORMAL = "normal"
    EXPERIMENTAL = "experimental"


class WriteActorKind(StrEnum):
    HUMAN = "HUMAN"
    AI = "AI"
    SYSTEM = "SYSTEM"


class OperationType(StrEnum):
    READ = "read"
    WRITE = "write"
    PLAN = "plan"
    EXECUTE = "execute"
