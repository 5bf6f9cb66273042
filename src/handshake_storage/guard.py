"""No silent edits: every content write names who made it.

A :class:`WriteContext` travels with each write; the :class:`StorageGuard`
turns it into :class:`MutationMetadata` (or refuses it), and the storage layer
persists that metadata on the row in the same statement as the change. AI
writes must be attributable to a job *and* a workflow, otherwise they are
refused with ``HSK-403-SILENT-EDIT`` before anything is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from .errors import GuardError, ValidationError
from .models import WriteActorKind

SILENT_EDIT = "HSK-403-SILENT-EDIT"


@dataclass(frozen=True, slots=True)
class WriteContext:
    actor_kind: WriteActorKind
    actor_id: str | None = None
    job_id: UUID | None = None
    workflow_id: UUID | None = None

    @classmethod
    def human(cls, actor_id: str | None = None) -> WriteContext:
        return cls(WriteActorKind.HUMAN, actor_id)

    @classmethod
    def system(cls, actor_id: str | None = None) -> WriteContext:
        return cls(WriteActorKind.SYSTEM, actor_id)

    @classmethod
    def ai(
        cls,
        job_id: UUID | None,
        workflow_id: UUID | None,
        actor_id: str | None = None,
    ) -> WriteContext:
        return cls(WriteActorKind.AI, actor_id, job_id, workflow_id)


@dataclass(frozen=True, slots=True)
class MutationMetadata:
    actor_kind: WriteActorKind
    actor_id: str | None
    job_id: UUID | None
    workflow_id: UUID | None
    edit_event_id: UUID
    resource_id: str
    timestamp: datetime


@runtime_checkable
class StorageGuard(Protocol):
    """Decides whether a write may happen and stamps it.

    Implementations raise :class:`GuardError` to refuse; they must not write.
    """

    def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata: ...


class DefaultStorageGuard:
    """Refuses AI writes that lack a job id or a workflow id."""

    def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
        if not isinstance(ctx, WriteContext):
            raise ValidationError("ctx must be a WriteContext")
        kind = ctx.actor_kind
        if kind is WriteActorKind.AI and (ctx.job_id is None or ctx.workflow_id is None):
            raise GuardError(f"{SILENT_EDIT}: an AI write needs both a job id and a workflow id")
        return MutationMetadata(
            actor_kind=kind,
            actor_id=ctx.actor_id,
            job_id=ctx.job_id,
            workflow_id=ctx.workflow_id,
            edit_event_id=uuid.uuid4(),
            resource_id=resource_id,
            timestamp=datetime.now(UTC),
        )
