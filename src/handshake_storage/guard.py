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
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from . import validation as check
from .errors import GuardError, StorageError, ValidationError
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


def authorize(guard: StorageGuard, ctx: Any, resource_id: str) -> MutationMetadata:
    """Ask ``guard`` about ``ctx`` (normalized first); its metadata with the
    declared types, or GuardError."""
    ctx = normalized_context(ctx)
    try:
        meta = guard.validate_write(ctx, resource_id)
    except StorageError:
        raise
    except Exception as exc:
        raise GuardError(f"the storage guard failed: {exc}") from None
    if not isinstance(meta, MutationMetadata):
        raise GuardError("the storage guard did not return MutationMetadata")
    # A custom guard's metadata gets the declared types (an enum, UUIDs,
    # text every backend stores, a UTC timestamp): it is both stored and
    # returned on the model.
    try:
        actor_id = check.optional_text(meta.actor_id, "guard actor_id")
        if (
            type(meta.actor_kind) is WriteActorKind
            and type(meta.timestamp) is datetime
            and meta.timestamp.tzinfo is UTC
            and type(meta.edit_event_id) is UUID
            and (meta.job_id is None or type(meta.job_id) is UUID)
            and (meta.workflow_id is None or type(meta.workflow_id) is UUID)
            and actor_id is meta.actor_id
        ):
            return meta
        return MutationMetadata(
            check.enum(WriteActorKind, meta.actor_kind, "guard actor_kind"),
            actor_id,
            check.optional_uuid(meta.job_id, "guard job_id"),
            check.optional_uuid(meta.workflow_id, "guard workflow_id"),
            check.uuid(meta.edit_event_id, "guard edit_event_id"),
            meta.resource_id,
            check.timestamp(meta.timestamp, "guard timestamp"),
        )
    except ValidationError as exc:
        raise GuardError(f"the storage guard returned invalid metadata: {exc}") from None


def normalized_context(ctx: Any) -> WriteContext:
    """A WriteContext whose fields have their declared types, so a guard
    comparing ``actor_kind is WriteActorKind.AI`` cannot be fooled by a str."""
    if not isinstance(ctx, WriteContext):
        raise ValidationError(f"ctx must be a WriteContext, not {type(ctx).__name__}")
    kind = check.enum(WriteActorKind, ctx.actor_kind, "ctx.actor_kind")
    actor_id = check.optional_text(ctx.actor_id, "ctx.actor_id")
    job_id = check.optional_uuid(ctx.job_id, "ctx.job_id")
    workflow_id = check.optional_uuid(ctx.workflow_id, "ctx.workflow_id")
    if (
        kind is ctx.actor_kind
        and actor_id is ctx.actor_id
        and job_id is ctx.job_id
        and workflow_id is ctx.workflow_id
    ):
        return ctx
    return WriteContext(kind, actor_id, job_id, workflow_id)
