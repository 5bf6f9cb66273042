"""Block writes, searches and ``indexes rebuild`` at once, with real threads,
on SQLite and on a real PostgreSQL server.

Writers replace whole documents (one generation at a time, atomically) and
update single blocks; searchers check that every result set is one
consistent state: a document's blocks are found all from one generation,
each hit's block really contains the query word, and the scores are those
the model computes from the returned text; a rebuilder drops and recomputes
the search rows and the engine index meanwhile. Nothing may fail, and at the
end the index equals a rebuild and agrees with the model.
"""

from __future__ import annotations

import threading

import search_model
from handshake_storage import Database, NewBlock, NewDocument, NewWorkspace, rebuildable
from portability_support import HUMAN

WRITERS, GENERATIONS, BLOCKS = 3, 12, 4
SEARCHES = 25
REBUILDS = 3
TIMEOUT = 300  # seconds; generous, the machine is shared


def _text(t: int, g: int, i: int) -> str:
    return f"common writer{t} gen{t}x{g} block{i} " + "filler " * (i + g % 3)


def test_writes_searches_and_rebuilds_at_once(db: Database) -> None:
    db.create_workspace(HUMAN, NewWorkspace("w", id="w"))
    for t in range(WRITERS):
        db.create_document(HUMAN, NewDocument("w", f"doc{t}", id=f"doc{t}"))
    errors: list[BaseException] = []
    checked = [0]

    def guarded(body):
        def run(*args):
            try:
                body(*args)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        return run

    @guarded
    def writer(t: int) -> None:
        doc = f"doc{t}"
        for g in range(GENERATIONS):
            blocks = [
                NewBlock(doc, "p", i, _text(t, g, i), id=f"{doc}-b{i}") for i in range(BLOCKS)
            ]
            db.replace_blocks(HUMAN, doc, blocks)

    @guarded
    def searcher(k: int) -> None:
        for n in range(SEARCHES):
            t = (k + n) % WRITERS
            hits = db.search_hits("w", f"writer{t}", 50)
            gens = {h.block.raw_content.split()[2] for h in hits}
            assert len(gens) <= 1, f"one search saw two generations of doc{t}: {gens}"
            assert len(hits) in (0, BLOCKS), [h.block.id for h in hits]
            texts = {h.block.id: h.block.raw_content for h in hits}
            expected = search_model.ranked(texts, f"writer{t}")
            assert [(h.block.id, h.score) for h in hits] == expected
            for h in db.search_hits("w", "common -filler", 50):
                assert "filler" not in h.block.raw_content.split()
            checked[0] += 1

    @guarded
    def rebuilder() -> None:
        for _ in range(REBUILDS):
            assert rebuildable.rebuild(db, ["block_search"]) == [
                "block_search",
                "block_search_fulltext",
            ]

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(WRITERS)]
    threads += [threading.Thread(target=searcher, args=(k,)) for k in range(2)]
    threads.append(threading.Thread(target=rebuilder))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a thread hung"
    assert not errors, errors
    assert checked[0] == 2 * SEARCHES
    # the end state: the last generation of every document, found as the model says
    texts = {b.id: b.raw_content for t in range(WRITERS) for b in db.get_blocks(f"doc{t}")}
    assert all(f"x{GENERATIONS - 1} " in text for text in texts.values())
    for query in ("common", "writer1", f'"gen0x{GENERATIONS - 1} block2"', "block* -filler"):
        found = [(h.block.id, h.score) for h in db.search_hits("w", query, 100)]
        assert found == search_model.ranked(texts, query), query
    assert all(r.equal for r in rebuildable.verify(db, ["block_search"]))
