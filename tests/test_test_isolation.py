"""Every PostgreSQL the tests start keeps its data outside pytest's shared
temporary directory: a second pytest run on the machine resets the
permissions there, and a server running as another user then dies (seen as
``pg_ctl: could not access directory .../pytest-of-root/.../pgdata``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "reliability"))

import reliability_support  # noqa: E402


def test_the_tests_own_postgresql_keeps_its_data_outside_pytests_temp_dir(tmp_path_factory):
    basetemp = tmp_path_factory.getbasetemp().resolve()
    started_here = not reliability_support._OWN
    server = reliability_support.own_postgres()
    try:
        data = server.pgdata.resolve()
        assert data.is_dir()
        assert basetemp not in data.parents, f"{data} is inside pytest's {basetemp}"
    finally:
        if started_here:  # another test module's server stays up for it
            reliability_support.stop_own_postgres()
