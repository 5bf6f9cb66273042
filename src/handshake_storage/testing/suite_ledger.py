"""Conformance for the change ledger and sync surface of :class:`Database`.

Mixed into :class:`~handshake_storage.testing.StorageConformance`, so any
backend is held to it. Uses only the public API and the ``db`` fixture.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from ..database import Database
from ..errors import NotFoundError, ValidationError
from ..guard import WriteContext
from ..models import NewDocument, NewWorkspace, WriteActorKind

_HUMAN = WriteContext.human("conformance")


class LedgerTests:
    def test_replica_id_is_stable_and_reidentify_gives_a_new_one(self, db: Database) -> None:
        first = db.replica_id
        assert str(uuid.UUID(first)) == first
        assert db.replica_id == first
        ws = db.create_workspace(_HUMAN, NewWorkspace("before"))
        second = db.reidentify()
        assert second != first and db.replica_id == second
        doc = db.create_document(_HUMAN, NewDocument(ws.id, "after"))
        origins = {c.subject_id: (c.origin_id, c.seq) for c in db.changes()}
        assert origins[ws.id] == (first, 1)
        assert origins[doc.id] == (second, 1)

    def test_changes_reads_the_ledger_and_checks_its_filters(self, db: Database) -> None:
        ws = db.create_workspace(_HUMAN, NewWorkspace("w"))
        changes = db.changes(workspace_id=ws.id, actor_kind=WriteActorKind.HUMAN)
        assert [(c.operation, c.actor_id, c.edit_event_id) for c in changes] == [
            ("create_workspace", "conformance", ws.edit_event_id)
        ]
        for bad in (
            {"workspace_id": 5},
            {"job_id": "not-a-uuid"},
            {"actor_kind": "ROBOT"},
            {"since": datetime(2020, 1, 1)},  # naive
            {"limit": 0},
            {"limit": True},
        ):
            with pytest.raises(ValidationError):
                db.changes(**bad)  # type: ignore[arg-type]
        assert len(db.changes()) == 1

    def test_export_import_vector_and_digests_on_one_replica(self, db: Database) -> None:
        ws = db.create_workspace(_HUMAN, NewWorkspace("w"))
        replica = db.replica_id
        assert db.sync_vector() == {ws.id: {replica: 1}}
        assert db.sync_vector(workspaces=["elsewhere"]) == {}
        batch = db.export_changes({})
        assert batch["format"] == "handshake-storage/changes" and batch["version"] == 1
        assert [c["subject_id"] for c in batch["changes"]] == [ws.id]
        assert db.export_changes(db.sync_vector())["changes"] == []
        digests = db.content_digests()
        report = db.import_changes(batch)  # its own change sets: already applied
        assert (report.applied, report.skipped) == (0, 1)
        assert db.content_digests() == digests
        assert db.content_digests([ws.id])["workspaces"][0] == 1
        for bad in ({"not": "a batch"}, "not json", 42):
            with pytest.raises(ValidationError):
                db.import_changes(bad)
        with pytest.raises(ValidationError):
            db.export_changes({"w": {"origin": "seven"}})  # type: ignore[dict-item]
        with pytest.raises(ValidationError):
            db.export_changes(limit=0)

    def test_conflict_log_and_ledger_prune_on_one_replica(self, db: Database) -> None:
        assert db.conflicts() == []
        with pytest.raises(NotFoundError):
            db.get_conflict("no-such-conflict")
        with pytest.raises(NotFoundError):
            db.restore_conflict(_HUMAN, "no-such-conflict")
        with pytest.raises(ValidationError):
            db.conflicts(kind="imaginary")
        ws = db.create_workspace(_HUMAN, NewWorkspace("w"))
        db.create_document(_HUMAN, NewDocument(ws.id, "d"))
        assert db.prune_ledger().pruned == 0  # no known peer: nothing is stable
        db.record_peer("peer-1", db.sync_vector())
        dry = db.prune_ledger(dry_run=True)
        assert (dry.peers, dry.scanned, dry.pruned) == (1, 2, 0)  # both newest of a live row
        db.delete_workspace(_HUMAN, ws.id)
        db.record_peer("peer-1", db.sync_vector())
        report = db.prune_ledger()
        assert report.pruned == 3 and db.changes() == []
        with pytest.raises(ValidationError):
            db.record_peer("", {})
