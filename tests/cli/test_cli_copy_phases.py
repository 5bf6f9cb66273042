"""``copy`` through the installed script: its phases in a pipe (load per
table, rebuild with its row count, restore keys, verify), its ``--json``
report with honest rates, and URLs from environment variables."""

from __future__ import annotations

import re

import pytest
from cli_support import run

from handshake_storage import open_database
from portability_support import OTHER, both_backends, populate


@pytest.fixture
def factories(request, tmp_path):
    yield from both_backends(request, tmp_path)


def test_copy_shows_its_phases_and_reports_json(backend, factories):
    source = factories[backend].open()
    populate(source)
    source_url = source._adapter.url.raw
    target_url = factories[OTHER[backend]].url()
    result = run(
        "copy",
        "--from-env",
        "HS_SRC",
        "--to-env",
        "HS_DST",
        env={"HS_SRC": source_url, "HS_DST": target_url, "CI": "true"},
    )
    assert result.exit_code == 0, result
    phases = [line.strip().split(":")[0] for line in result.stderr.splitlines()[1:]]
    loads = [p for p in phases if p.startswith("load ")]
    verified = f"verify {len(loads)} tables"  # every loaded table is read back
    assert {"load workspaces", "load blocks", "load canvas_edges"} <= set(loads)
    assert phases[len(loads) :] == ["rebuild derived data", "restore keys", verified]
    assert "\x1b" not in result.stderr and "\r" not in result.stderr  # no animation in a pipe
    rebuilt = re.search(r"rebuild derived data: ([\d,]+) rows", result.stderr)
    assert rebuilt and int(rebuilt[1].replace(",", "")) > 0

    target2 = factories[OTHER[backend]].url()
    body = run("copy", "--from", source_url, "--to", target2, "--json").json()
    assert body["ok"] is True and body["rows_rebuilt"] > 0
    assert body["rows_copied"] == sum(t["rows"] for t in body["tables"])
    assert body["rows_written_per_second"] > body["rows_per_second"] > 0
    assert [p["phase"] for p in body["phases"]][-3:] == [
        "rebuild derived data",
        "restore keys",
        f"verify {len(body['tables'])} tables",
    ]
    with open_database(target2) as copy:
        assert len(copy.list_workspaces()) == len(source.list_workspaces())
