"""Conformance tests: workspaces, documents and blocks, and search."""

from __future__ import annotations

import math
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from ..database import Database
from ..errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from ..models import (
    BlockUpdate,
    NewBlock,
    NewDocument,
    NewWorkspace,
)
from .support import (
    BAD_CONTENT_IDS,
    BAD_INTEGERS,
    BAD_JSON,
    BAD_NEW_IDS,
    BAD_TEXT,
    GOOD_INTEGERS,
    GOOD_JSON,
    GOOD_TEXT,
    HUMAN,
    ai_context,
    assert_utc,
    json_equal,
    refusals,
    refused_without_change,
    seed,
    snapshot,
)


class DocumentTests:
    """Conformance tests (part of StorageConformance):
    workspaces, documents and blocks, and search."""

    # -- workspaces --------------------------------------------------------------------------------

    def test_workspace_round_trip(self, db: Database) -> None:
        assert db.list_workspaces() == []
        ws = db.create_workspace(HUMAN, NewWorkspace("Notes ✍️", id="ws-1"))
        assert (ws.id, ws.name) == ("ws-1", "Notes ✍️")
        assert_utc(ws.created_at)
        assert ws.created_at == ws.updated_at
        assert db.get_workspace("ws-1") == ws
        assert db.list_workspaces() == [ws]
        generated = db.create_workspace(HUMAN, NewWorkspace("generated"))
        assert UUID(generated.id)  # a fresh UUID string
        assert db.get_workspace(generated.id) == generated
        longest = db.create_workspace(HUMAN, NewWorkspace("x", id="é" * 255))
        assert db.get_workspace("é" * 255) == longest

    def test_missing_workspace(self, db: Database) -> None:
        assert db.get_workspace("nope") is None
        with pytest.raises(NotFoundError):
            db.delete_workspace(HUMAN, "nope")
        assert db.list_documents("nope") == []
        assert db.list_canvases("nope") == []
        assert db.search_blocks("nope", "alpha") == []

    def test_duplicate_workspace_is_a_conflict(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        with pytest.raises(ConflictError):
            db.create_workspace(HUMAN, NewWorkspace("impostor", id=w.workspace))
        assert snapshot(db) == before

    def test_delete_workspace_cascades(self, db: Database) -> None:
        w = seed(db)
        db.delete_workspace(HUMAN, w.workspace)
        assert db.get_workspace(w.workspace) is None
        assert [ws.id for ws in db.list_workspaces()] == [w.other_workspace]
        assert db.list_documents(w.workspace) == []
        assert db.list_canvases(w.workspace) == []
        for document in (w.document, w.other_document):
            with pytest.raises(NotFoundError):
                db.get_document(document)
            assert db.get_blocks(document) == []
        for block in (*w.blocks, w.other_block):
            with pytest.raises(NotFoundError):
                db.get_block(block)
        for canvas in (w.canvas, w.other_canvas):
            with pytest.raises(NotFoundError):
                db.get_canvas_with_graph(canvas)
        assert db.search_blocks(w.workspace, "alpha") == []
        # the ids are free again
        db.create_workspace(HUMAN, NewWorkspace("again", id=w.workspace))
        db.create_document(HUMAN, NewDocument(w.workspace, "t", id=w.document))
        db.create_block(HUMAN, NewBlock(w.document, "p", 1, "alpha", id=w.blocks[0]))
        assert [b.id for b in db.search_blocks(w.workspace, "alpha")] == [w.blocks[0]]

    def test_workspace_input_is_checked(self, db: Database) -> None:
        problems = refusals(
            BAD_NEW_IDS,
            lambda v: db.create_workspace(HUMAN, NewWorkspace("n", id=v)),
            ValidationError,
        )
        problems += refusals(
            BAD_TEXT, lambda v: db.create_workspace(HUMAN, NewWorkspace(v)), ValidationError
        )
        problems += refusals(
            (None, "ws", {"name": "n"}),
            lambda v: db.create_workspace(HUMAN, v),
            ValidationError,
        )
        problems += refusals(
            (None, "HUMAN", 1), lambda c: db.create_workspace(c, NewWorkspace("n")), ValidationError
        )
        assert not problems, problems
        assert db.list_workspaces() == []

    # -- documents ---------------------------------------------------------------------------------

    def test_document_round_trip(self, db: Database) -> None:
        w = seed(db)
        doc = db.create_document(HUMAN, NewDocument(w.other_workspace, "Título", id="doc-x"))
        assert (doc.id, doc.workspace_id, doc.title) == ("doc-x", w.other_workspace, "Título")
        assert_utc(doc.created_at)
        assert db.get_document("doc-x") == doc
        assert db.list_documents(w.other_workspace) == [doc]
        generated = db.create_document(HUMAN, NewDocument(w.other_workspace, "g"))
        assert UUID(generated.id)
        assert db.get_document(generated.id) == generated

    def test_document_failures(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        with pytest.raises(NotFoundError):
            db.get_document("nope")
        with pytest.raises(NotFoundError):
            db.delete_document(HUMAN, "nope")
        with pytest.raises(ConflictError):
            db.create_document(HUMAN, NewDocument(w.workspace, "t", id=w.document))
        with pytest.raises(ConflictError):  # ids are unique across workspaces
            db.create_document(HUMAN, NewDocument(w.other_workspace, "t", id=w.other_document))
        with pytest.raises(NotFoundError, match=r"^workspace 'no-such-workspace' does not exist$"):
            db.create_document(HUMAN, NewDocument("no-such-workspace", "t", id="doc-x"))
        problems = refusals(
            BAD_CONTENT_IDS,
            lambda v: db.create_document(HUMAN, NewDocument(v, "t")),
            ValidationError,
        )
        problems += refusals(
            BAD_NEW_IDS,
            lambda v: db.create_document(HUMAN, NewDocument(w.workspace, "t", id=v)),
            ValidationError,
        )
        problems += refusals(
            BAD_TEXT,
            lambda v: db.create_document(HUMAN, NewDocument(w.workspace, v)),
            ValidationError,
        )
        problems += refusals(
            (NewWorkspace("n"), None), lambda v: db.create_document(HUMAN, v), ValidationError
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_delete_document_cascades_to_blocks(self, db: Database) -> None:
        w = seed(db)
        db.delete_document(HUMAN, w.document)
        with pytest.raises(NotFoundError):
            db.get_document(w.document)
        assert db.get_blocks(w.document) == []
        for block in w.blocks:
            with pytest.raises(NotFoundError):
                db.get_block(block)
        assert db.search_blocks(w.workspace, "alpha") == []
        assert [d.id for d in db.list_documents(w.workspace)] == [w.other_document]
        assert [b.id for b in db.get_blocks(w.other_document)] == [w.other_block]

    # -- blocks ------------------------------------------------------------------------------------

    def test_block_round_trip_and_defaults(self, db: Database) -> None:
        w = seed(db)
        block = db.create_block(HUMAN, NewBlock(w.other_document, "code", -5, "print(1)"))
        assert UUID(block.id)
        assert (block.document_id, block.kind, block.sequence) == (w.other_document, "code", -5)
        assert block.raw_content == block.display_content == "print(1)"
        assert block.derived_content == {}
        assert_utc(block.created_at)
        assert db.get_block(block.id) == block
        full = db.create_block(
            HUMAN,
            NewBlock(
                w.other_document,
                "quote",
                2**63 - 1,
                "raw **md**",
                display_content="<b>md</b>",
                derived_content={"links": ["a", "b"], "score": 0.25},
                id="blk-full",
            ),
        )
        assert full.display_content == "<b>md</b>"
        assert json_equal(full.derived_content, {"links": ["a", "b"], "score": 0.25})
        assert db.get_block("blk-full") == full

    def test_update_block_display_follows_raw_unless_given(self, db: Database) -> None:
        w = seed(db)
        first = db.create_block(
            HUMAN, NewBlock(w.other_document, "p", 50, "one", display_content="<p>one</p>")
        )
        moved = db.update_block(HUMAN, first.id, BlockUpdate(raw_content="two"))
        assert (moved.raw_content, moved.display_content) == ("two", "two")
        own = db.update_block(
            HUMAN, first.id, BlockUpdate(raw_content="three", display_content="<p>3</p>")
        )
        assert (own.raw_content, own.display_content) == ("three", "<p>3</p>")
        shown = db.update_block(HUMAN, first.id, BlockUpdate(display_content="<i>3</i>"))
        assert (shown.raw_content, shown.display_content) == ("three", "<i>3</i>")
        kept = db.update_block(HUMAN, first.id, BlockUpdate(kind="quote"))
        assert (kept.raw_content, kept.display_content) == ("three", "<i>3</i>")
        assert db.get_block(first.id) == kept

    def test_block_failures(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        with pytest.raises(NotFoundError):
            db.get_block("nope")
        with pytest.raises(NotFoundError):
            db.delete_block(HUMAN, "nope")
        with pytest.raises(NotFoundError):
            db.update_block(HUMAN, "nope", BlockUpdate(kind="k"))
        taken = f"^block {w.blocks[0]!r} already exists$"
        with pytest.raises(ConflictError, match=taken):
            db.create_block(HUMAN, NewBlock(w.document, "p", 1, "intruder", id=w.blocks[0]))
        with pytest.raises(ConflictError):  # ids are unique across documents
            db.create_block(HUMAN, NewBlock(w.document, "p", 1, "intruder", id=w.other_block))
        with pytest.raises(NotFoundError, match=r"^document 'no-such-document' does not exist$"):
            db.create_block(HUMAN, NewBlock("no-such-document", "p", 1, "intruder", id="b-x"))
        problems = refusals(
            BAD_NEW_IDS,
            lambda v: db.create_block(HUMAN, NewBlock(w.document, "p", 1, "intruder", id=v)),
            ValidationError,
        )
        problems += refusals(
            BAD_CONTENT_IDS,
            lambda v: db.create_block(HUMAN, NewBlock(v, "p", 1, "intruder")),
            ValidationError,
        )
        problems += refusals(
            (NewDocument(w.workspace, "t"), None, "block"),
            lambda v: db.create_block(HUMAN, v),
            ValidationError,
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_blocks_ordered_by_sequence_then_id(self, db: Database) -> None:
        w = seed(db)
        specs = [
            (3, "b"),
            (1, "z"),
            (-(2**63), "low"),
            (1, "a"),
            (2**63 - 1, "high"),
            (1, "Z"),
            (1, "é"),
            (1, "😀"),
            (1, "\uff41"),
            (1, "_"),
            (1, "a2"),
            (0, "mid"),
        ]
        for sequence, block_id in specs:
            db.create_block(HUMAN, NewBlock(w.other_document, "p", sequence, "x", id=block_id))
        expected = sorted((*specs, (1, w.other_block)))
        got = db.get_blocks(w.other_document)
        assert [(b.sequence, b.id) for b in got] == expected
        assert got == [db.get_block(b.id) for b in got]

    def test_update_block(self, db: Database) -> None:
        w = seed(db)
        original = db.get_block(w.blocks[0])
        kind = db.update_block(HUMAN, w.blocks[0], BlockUpdate(kind="heading"))
        assert kind.kind == "heading"
        assert (kind.sequence, kind.raw_content, kind.display_content) == (
            original.sequence,
            original.raw_content,
            original.display_content,
        )
        assert kind.derived_content == original.derived_content
        assert db.get_block(w.blocks[0]) == kind
        everything = db.update_block(
            HUMAN,
            w.blocks[0],
            BlockUpdate(
                kind="p",
                sequence=-(2**63),
                raw_content="fresh words",
                display_content="Fresh words",
                derived_content={"v": [1, 2.5, None]},
            ),
        )
        assert (everything.kind, everything.sequence) == ("p", -(2**63))
        assert (everything.raw_content, everything.display_content) == (
            "fresh words",
            "Fresh words",
        )
        assert json_equal(everything.derived_content, {"v": [1, 2.5, None]})
        assert everything.created_at == original.created_at
        assert db.get_block(w.blocks[0]) == everything
        nothing = db.update_block(HUMAN, w.blocks[0], BlockUpdate())
        assert (nothing.kind, nothing.raw_content) == ("p", "fresh words")
        assert db.get_block(w.blocks[0]) == nothing
        # falsy values are values, not "leave unchanged"
        for derived in (False, 0, "", [], {}, 0.0):
            falsy = db.update_block(HUMAN, w.blocks[0], BlockUpdate(derived_content=derived))
            assert json_equal(falsy.derived_content, derived), derived
            assert json_equal(db.get_block(w.blocks[0]).derived_content, derived), derived
        empty = db.update_block(HUMAN, w.blocks[0], BlockUpdate(raw_content="", kind=""))
        assert (empty.raw_content, empty.kind) == ("", "")
        assert db.get_block(w.blocks[0]) == empty

    def test_update_block_refusals_change_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        block_id = w.blocks[0]
        updates: list[Any] = [None, {"kind": "k"}, NewBlock(w.document, "p", 1, "x")]
        updates += [BlockUpdate(kind=v) for v in BAD_TEXT]
        updates += [BlockUpdate(raw_content=v) for v in BAD_TEXT]
        updates += [BlockUpdate(display_content=v) for v in BAD_TEXT]
        updates += [BlockUpdate(sequence=v) for v in BAD_INTEGERS if v is not None]
        updates += [BlockUpdate(derived_content=v) for v in BAD_JSON]
        problems = refusals(
            tuple(updates), lambda u: db.update_block(HUMAN, block_id, u), ValidationError
        )
        problems += refusals(
            BAD_CONTENT_IDS,
            lambda v: db.update_block(HUMAN, v, BlockUpdate(kind="k")),
            ValidationError,
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_delete_block(self, db: Database) -> None:
        w = seed(db)
        db.delete_block(HUMAN, w.blocks[0])
        with pytest.raises(NotFoundError):
            db.get_block(w.blocks[0])
        with pytest.raises(NotFoundError):
            db.delete_block(HUMAN, w.blocks[0])
        assert [b.id for b in db.get_blocks(w.document)] == [w.blocks[1]]
        assert db.search_blocks(w.workspace, "alpha") == []
        assert [b.id for b in db.search_blocks(w.workspace, "gamma")] == [w.blocks[1]]

    def test_replace_blocks(self, db: Database) -> None:
        w = seed(db)
        new = [
            NewBlock(w.document, "p", 2, "replacement two", id="r-2"),
            NewBlock(w.document, "p", 1, "replacement one", id="r-1"),
            NewBlock(w.document, "p", 1, "replacement zero", id="r-0"),
            NewBlock(w.document, "p", 3, "reuses an old id", id=w.blocks[0]),
        ]
        ctx = ai_context()
        result = db.replace_blocks(ctx, w.document, new)
        assert [(b.sequence, b.id) for b in result] == [
            (1, "r-0"),
            (1, "r-1"),
            (2, "r-2"),
            (3, w.blocks[0]),
        ]
        assert db.get_blocks(w.document) == result
        assert all(b.last_job_id == ctx.job_id for b in result)
        with pytest.raises(NotFoundError):
            db.get_block(w.blocks[1])
        assert db.search_blocks(w.workspace, "gamma") == []
        assert {b.id for b in db.search_blocks(w.workspace, "replacement")} == {
            "r-0",
            "r-1",
            "r-2",
        }
        assert db.search_blocks(w.workspace, "alpha") == []
        document = db.get_document(w.document)
        assert document.last_job_id == ctx.job_id
        assert document.edit_event_id == result[0].edit_event_id
        assert [b.id for b in db.get_blocks(w.other_document)] == [w.other_block]
        assert db.replace_blocks(HUMAN, w.document, []) == []
        assert db.get_blocks(w.document) == []
        assert db.replace_blocks(HUMAN, w.document, ()) == []

    def test_replace_blocks_refusals_change_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        doc = w.document
        good = NewBlock(doc, "p", 1, "replacement", id="r-1")
        cases: list[tuple[str, Any, Any, type]] = [
            ("missing document", "no-such-doc", [], NotFoundError),
            (
                "block of another document",
                doc,
                [good, NewBlock(w.other_document, "p", 1, "x")],
                ValidationError,
            ),
            ("repeated id", doc, [good, good], ValidationError),
            ("not a list", doc, good, ValidationError),
            ("a string", doc, "blocks", ValidationError),
            ("a generator", doc, (b for b in [good]), ValidationError),
            ("not a block", doc, [good, NewDocument(w.workspace, "t")], ValidationError),
            (
                "NaN in the last block",
                doc,
                [good, NewBlock(doc, "p", 2, "x", derived_content=math.nan)],
                ValidationError,
            ),
            ("NUL in a block", doc, [good, NewBlock(doc, "p", 2, "x\x00")], ValidationError),
            (
                "sequence beyond 64 bits",
                doc,
                [good, NewBlock(doc, "p", 2**63, "x")],
                ValidationError,
            ),
            ("bad document id", "", [], ValidationError),
            # fails in the middle of the transaction, after the old blocks were deleted:
            (
                "id of another document's block",
                doc,
                [good, NewBlock(doc, "p", 2, "intruder", id=w.other_block)],
                ConflictError,
            ),
        ]
        problems = refused_without_change(
            db,
            before,
            [
                (name, partial(db.replace_blocks, HUMAN, document_id, blocks), error)
                for name, document_id, blocks, error in cases
            ],
        )
        assert not problems, problems

    def test_block_values_round_trip(self, db: Database) -> None:
        w = seed(db)
        problems = []
        for i, text in enumerate(("", *GOOD_TEXT)):
            block = db.create_block(
                HUMAN, NewBlock(w.document, text, i, text, display_content=text, id=f"t{i}")
            )
            stored = db.get_block(f"t{i}")
            if stored != block or (stored.kind, stored.raw_content, stored.display_content) != (
                text,
                text,
                text,
            ):
                problems.append(f"text {text[:40]!r} did not round-trip")
        for i, sequence in enumerate(GOOD_INTEGERS):
            db.update_block(HUMAN, "t0", BlockUpdate(sequence=sequence))
            stored_sequence = db.get_block("t0").sequence
            if type(stored_sequence) is not int or stored_sequence != sequence:
                problems.append(f"sequence {sequence} came back as {stored_sequence!r} ({i})")
        for i, value in enumerate(GOOD_JSON):
            db.update_block(HUMAN, "t0", BlockUpdate(derived_content=value))
            stored_json = db.get_block("t0").derived_content
            if not json_equal(stored_json, value):
                problems.append(f"JSON {value!r:.60} came back as {stored_json!r:.60} ({i})")
        assert not problems, problems

    def test_deep_json_is_readable_or_refused(self, db: Database) -> None:
        w = seed(db)

        def nested(levels: int) -> Any:
            value: Any = {"leaf": True}
            for i in range(levels - 1):
                value = [value] if i % 2 else {"k": value}
            return value

        deep = nested(400)
        db.create_block(HUMAN, NewBlock(w.document, "p", 5, "deep", derived_content=deep, id="d"))

        def read_from_deep_stack(frames: int) -> Any:
            if frames:
                return read_from_deep_stack(frames - 1)
            return db.get_block("d").derived_content

        # accepted means readable, also by a caller with a deep stack of its own
        assert read_from_deep_stack(300) == deep
        assert db.get_blocks(w.document)[-1].derived_content == deep
        # near the interpreter's recursion limit: whatever is accepted must read back
        unreadable = []
        for levels in (600, 700, 800, 850, 900, 950, 980, 990, 995):
            value = nested(levels)
            try:
                db.update_block(HUMAN, "d", BlockUpdate(derived_content=value))
            except ValidationError:
                continue
            try:
                if read_from_deep_stack(100) != value:
                    unreadable.append(f"{levels} levels: read back different")
            except Exception as exc:
                unreadable.append(f"{levels} levels: {type(exc).__name__}")
        assert not unreadable, unreadable
        cyclic: list[Any] = []
        cyclic.append(cyclic)
        before = snapshot(db)
        problems = refusals(
            (nested(5_000), nested(100_000), cyclic),
            lambda v: db.update_block(HUMAN, w.blocks[0], BlockUpdate(derived_content=v)),
            ValidationError,
        )
        assert not problems, [p[-200:] for p in problems]
        assert snapshot(db) == before

    # -- search ------------------------------------------------------------------------------------

    def test_search_blocks(self, db: Database) -> None:
        w = seed(db)
        doc = w.other_document
        db.replace_blocks(
            HUMAN,
            doc,
            [
                NewBlock(doc, "p", 1, "The quick brown fox", id="s-fox"),
                NewBlock(doc, "p", 2, "the lazy dog; THE END, the end", id="s-dog"),
                NewBlock(doc, "p", 3, "Straße und naïve Café", id="s-de"),
                NewBlock(doc, "p", 4, "emoji 😀 and 日本語 words", id="s-emoji"),
                NewBlock(doc, "p", 5, "fox " + "a" * 150, id="s-long"),
            ],
        )
        db.create_block(HUMAN, NewBlock(w.document, "p", 9, "the fox again", id="s-other-doc"))
        db.create_document(HUMAN, NewDocument(w.other_workspace, "t", id="doc-far"))
        db.create_block(HUMAN, NewBlock("doc-far", "p", 1, "the fox elsewhere", id="s-far"))

        def ids(query: str, limit: int = 50) -> list[str]:
            return [b.id for b in db.search_blocks(w.workspace, query, limit)]

        # best score first (more occurrences, shorter block), then block id
        assert ids("the") == ["s-dog", "s-other-doc", "s-fox"]
        assert ids("THE") == ids("the")
        assert ids("the end") == ["s-dog"]
        assert ids("fox quick") == ["s-fox"]
        assert ids("fox") == ["s-long", "s-other-doc", "s-fox"]  # 2, 3 and 4 words
        assert ids("fox", limit=2) == ["s-long", "s-other-doc"]
        hits = db.search_hits(w.workspace, "fox")
        assert [h.block.id for h in hits] == ids("fox")
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all("**fox**" in h.snippet for h in hits)
        assert [h.block.id for h in db.search_hits(w.workspace, "fox", 1, 1)] == ["s-other-doc"]
        assert ids("STRASSE café") == ["s-de"]
        assert ids("日本語") == ["s-emoji"]
        assert ids("A" * 150) == ["s-long"]
        assert ids("a" * 149) == []
        assert ids("missing") == []
        assert ids("fox missing") == []
        for empty in ("", "  ,;!  "):  # nothing to search for: refused
            with pytest.raises(ValidationError, match="no words"):
                ids(empty)
        assert [b.id for b in db.search_blocks(w.other_workspace, "fox")] == ["s-far"]
        for block in db.search_blocks(w.workspace, "the"):
            assert block == db.get_block(block.id)
        # the projection follows updates and deletes
        db.update_block(HUMAN, "s-fox", BlockUpdate(raw_content="a slow hound"))
        assert ids("quick") == [] and ids("hound") == ["s-fox"]
        db.update_block(HUMAN, "s-fox", BlockUpdate(display_content="display only"))
        assert ids("display") == [] and ids("hound") == ["s-fox"]
        db.delete_block(HUMAN, "s-dog")
        assert ids("end") == []

    def test_search_input_is_checked(self, db: Database) -> None:
        w = seed(db)
        problems = refusals(
            BAD_CONTENT_IDS, lambda v: db.search_blocks(v, "alpha"), ValidationError
        )
        problems += refusals(
            (None, 5, b"alpha", "nul\x00", "\ud800"),
            lambda q: db.search_blocks(w.workspace, q),
            ValidationError,
        )
        problems += refusals(
            (0, -1, 10_001, 2**63, True, 1.0, "5", None),
            lambda n: db.search_blocks(w.workspace, "alpha", n),
            ValidationError,
        )
        many_terms = " ".join(f"term{i}" for i in range(65))
        problems += refusals(
            (many_terms,), lambda q: db.search_blocks(w.workspace, q), ValidationError
        )
        assert not problems, problems
        assert [b.id for b in db.search_blocks(w.workspace, "alpha", 10_000)] == [w.blocks[0]]
        sixty_four = " ".join(["alpha"] + [f"term{i}" for i in range(63)])
        assert db.search_blocks(w.workspace, sixty_four) == []
