"""The change-set batch: what travels between replicas, as plain JSON.

Format ``handshake-storage/changes``, version 1::

    {
      "format": "handshake-storage/changes",
      "version": 1,
      "source": "<replica id of the sender>",
      "complete": true,            # false: the sender has more for this vector
      "changes": [
        {
          "origin": "<replica id that wrote it>", "seq": 7,
          "workspace": "<workspace id>" | null,   # null: AI jobs and workflows
          "hlc": "0001796120141145.000000.<origin>",
          "edit_event_id": "<uuid>",
          "actor_kind": "HUMAN" | "AI" | "SYSTEM", "actor_id": "..." | null,
          "job_id": "<uuid>" | null, "workflow_id": "<uuid>" | null,
          "operation": "update_block",
          "subject_table": "blocks", "subject_id": "<id>",
          "status": "applied" | "rejected",
          "written_at": "2026-12-01 10:15:41.150936+00:00",
          "payload": {"put": [{"table", "columns", "rows"}], "delete": [...],
                      "base": "<generation>", "prev": "<event>", "replaced": [...]}
        }, ...
      ]
    }

Changes of one workspace appear in causal order (the order the sender
applied them). ``decode`` checks everything a receiver relies on and raises
:class:`ValidationError` naming what is wrong: a batch comes from another
machine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .. import validation as check
from ..errors import ValidationError
from ..ledger import (
    APPLIED,
    GLOBAL_SCOPE,
    MAX_COUNTER,
    MAX_WALL,
    REJECTED,
    ChangeSet,
    stamp,
    stamp_parts,
)
from ..models import WriteActorKind

FORMAT = "handshake-storage/changes"
VERSION = 1

_TEXT_FIELDS = ("origin", "hlc", "operation", "subject_table", "subject_id")


def encode(source: str, changes: list[ChangeSet], complete: bool) -> dict[str, Any]:
    """A batch of ``changes`` from replica ``source``, ready for ``json.dumps``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "complete": complete,
        "changes": [_change(c) for c in changes],
    }


def _change(c: ChangeSet) -> dict[str, Any]:
    return {
        "origin": c.origin_id,
        "seq": c.seq,
        "workspace": c.workspace_id,
        "hlc": c.hlc,
        "edit_event_id": str(c.edit_event_id),
        "actor_kind": c.actor_kind.value,
        "actor_id": c.actor_id,
        "job_id": None if c.job_id is None else str(c.job_id),
        "workflow_id": None if c.workflow_id is None else str(c.workflow_id),
        "operation": c.operation,
        "subject_table": c.subject_table,
        "subject_id": c.subject_id,
        "status": c.status,
        "written_at": c.written_at.astimezone(UTC).isoformat(" ", "microseconds"),
        "payload": c.payload,
    }


def decode(batch: Any) -> tuple[str, bool, list[ChangeSet]]:
    """(source, complete, change sets) of a batch (a dict or its JSON text)."""
    if isinstance(batch, str | bytes):
        try:
            batch = json.loads(batch)
        except ValueError as exc:
            raise ValidationError(f"a change batch is not JSON: {exc}") from None
    if not isinstance(batch, dict):
        raise ValidationError("a change batch must be a JSON object")
    if batch.get("format") != FORMAT:
        raise ValidationError(f"not a change batch (format must be {FORMAT!r})")
    if batch.get("version") != VERSION:
        raise ValidationError(
            f"change batch version {batch.get('version')!r} is not supported (this "
            f"version of handshake-storage reads version {VERSION})"
        )
    source = batch.get("source")
    if not isinstance(source, str) or not source:
        raise ValidationError("a change batch must name its source replica")
    changes = batch.get("changes")
    if not isinstance(changes, list):
        raise ValidationError("a change batch must hold a list of changes")
    complete = batch.get("complete", True)
    if not isinstance(complete, bool):
        raise ValidationError("a change batch's 'complete' must be true or false")
    return source, complete, [_decode_change(i, c) for i, c in enumerate(changes)]


def _decode_change(index: int, raw: Any) -> ChangeSet:
    where = f"change {index} of the batch"
    if not isinstance(raw, dict):
        raise ValidationError(f"{where} is not an object")
    try:
        for name in _TEXT_FIELDS:
            if not isinstance(raw[name], str) or not raw[name]:
                raise ValidationError(f"{where}: {name} must be non-empty text")
        seq = raw["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= check.INT64_MAX:
            raise ValidationError(f"{where}: seq must be a positive 64-bit integer")
        workspace = raw["workspace"]
        if workspace is not None and (not isinstance(workspace, str) or not workspace):
            raise ValidationError(f"{where}: workspace must be an id or null")
        if not _is_stamp(raw["hlc"], raw["origin"]):
            raise ValidationError(f"{where}: hlc {raw['hlc']!r} is not a stamp of its origin")
        status = raw["status"]
        if status not in (APPLIED, REJECTED):
            raise ValidationError(f"{where}: status must be applied or rejected")
        written_at = raw["written_at"]
        try:
            written = datetime.fromisoformat(written_at)
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: written_at must be an ISO 8601 timestamp") from None
        if written.tzinfo is None:
            raise ValidationError(f"{where}: written_at must carry a time zone")
        payload = raw["payload"]
        if not isinstance(payload, dict):
            raise ValidationError(f"{where}: payload must be an object")
        _check_payload(where, payload)
        actor_id = raw["actor_id"]
        if actor_id is not None and not isinstance(actor_id, str):
            raise ValidationError(f"{where}: actor_id must be text or null")
        return ChangeSet(
            origin_id=raw["origin"],
            seq=seq,
            workspace_id=workspace or None,
            position=0,
            hlc=raw["hlc"],
            edit_event_id=check.uuid(raw["edit_event_id"], f"{where}: edit_event_id"),
            actor_kind=check.enum(WriteActorKind, raw["actor_kind"], f"{where}: actor_kind"),
            actor_id=actor_id,
            job_id=check.optional_uuid(raw["job_id"], f"{where}: job_id"),
            workflow_id=check.optional_uuid(raw["workflow_id"], f"{where}: workflow_id"),
            operation=raw["operation"],
            subject_table=raw["subject_table"],
            subject_id=raw["subject_id"],
            status=status,
            written_at=written.astimezone(UTC),
            payload=payload,
        )
    except KeyError as exc:
        raise ValidationError(f"{where} lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"{where} is malformed: {exc}") from None


def _is_stamp(text: str, origin: str) -> bool:
    """Whether ``text`` is a stamp of ``origin`` exactly as ``ledger.stamp``
    writes it (stamps are compared as text, so only that form sorts right)."""
    try:
        wall, counter, of = stamp_parts(text)
    except ValueError:
        return False
    return (
        of == origin
        and 0 <= wall <= MAX_WALL
        and 0 <= counter <= MAX_COUNTER
        and stamp(wall, counter, of) == text
    )


def _check_payload(where: str, payload: dict[str, Any]) -> None:
    for key in ("put", "delete", "replaced"):
        for group in payload.get(key, ()):
            if (
                not isinstance(group, dict)
                or not isinstance(group.get("table"), str)
                or not isinstance(group.get("rows"), list)
            ):
                raise ValidationError(f"{where}: payload {key} groups need a table and rows")
            rows = group["rows"]
            if key == "put":
                columns = group.get("columns")
                if (
                    not isinstance(columns, list)
                    or not columns
                    or columns[0] != "id"
                    or not all(isinstance(c, str) for c in columns)
                    or len(set(columns)) != len(columns)
                ):
                    raise ValidationError(f"{where}: payload put groups need id-first columns")
                width = len(columns)
            for r in rows:  # one pass: keyed rows, of the group's width
                if not isinstance(r, list) or not r or not isinstance(r[0], str):
                    raise ValidationError(f"{where}: payload {key} groups need a table and rows")
                if key == "put":
                    if len(r) != width:
                        raise ValidationError(f"{where}: payload put groups need id-first columns")
                elif len(r) != 2 or not (r[1] is None or isinstance(r[1], str)):
                    raise ValidationError(
                        f"{where}: payload {key} rows need a key and the event it was seen at"
                    )
    for key in ("base", "prev"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise ValidationError(f"{where}: payload {key} must be an event id")


def _keyed(row: Any) -> bool:
    return isinstance(row, list) and bool(row) and isinstance(row[0], str)


def scope_of(workspace: str | None) -> str:
    return workspace or GLOBAL_SCOPE
