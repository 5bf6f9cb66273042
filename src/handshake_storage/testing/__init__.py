"""The storage conformance suite, importable by any backend (pillar 4).

Hold a backend to it by subclassing :class:`StorageConformance` in a test
module and providing a ``db`` fixture (a migrated, empty
:class:`~handshake_storage.Database` of the backend, new for each test) and
either a ``database_url`` fixture (the URL of a further empty database) or
an overriding ``database_factory`` fixture::

    import pytest
    from handshake_storage import open_database
    from handshake_storage.testing import StorageConformance

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        def db(self, tmp_path):
            database = open_database(make_empty_database_url(tmp_path))
            database.run_migrations()
            yield database
            database.close()

        @pytest.fixture
        def database_url(self, tmp_path):
            return make_empty_database_url(tmp_path)

The tests live in one module per area (``suite_lifecycle``, ``suite_guard``,
``suite_documents``, ``suite_canvases``, ``suite_jobs``, ``suite_inputs``;
shared pieces in ``support``); :class:`StorageConformance` combines them.
Every test method is a plain pytest test; the suite needs ``pytest`` (the
``test`` extra) and never imports a database driver.
"""

from .conformance import AREAS, StorageConformance
from .support import (
    HUMAN,
    SEED_TERMS,
    SYSTEM,
    RecordingGuard,
    World,
    ai_context,
    json_equal,
    new_job,
    seed,
    snapshot,
)

__all__ = [
    "AREAS",
    "HUMAN",
    "SEED_TERMS",
    "SYSTEM",
    "RecordingGuard",
    "StorageConformance",
    "World",
    "ai_context",
    "json_equal",
    "new_job",
    "seed",
    "snapshot",
]
