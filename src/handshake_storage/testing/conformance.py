"""What every Handshake Storage backend must do, as pytest tests.

:class:`StorageConformance` exercises every public method of
:class:`~handshake_storage.Database`: the happy paths, the failure paths
(missing rows, malformed ids, constraint violations, guard refusals,
values a backend could not store), deterministic ordering, atomicity of the
whole-content replacements, traceability columns, and a closed database.
After every refusal it reads the whole database back through the API and
requires it to be unchanged.

Fixtures a subclass provides (see :mod:`handshake_storage.testing`):

``db``
    A migrated, empty ``Database``, new for each test.
``database_url`` (or override ``database_factory``)
    The URL of a further empty database. The default ``database_factory``
    opens it with ``open_database(url, **options)`` (e.g. ``guard=...``)
    and migrates it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..database import Database, open_database
from .suite_canvases import CanvasTests
from .suite_documents import DocumentTests
from .suite_guard import GuardTests
from .suite_inputs import InputTests
from .suite_jobs import JobTests
from .suite_ledger import LedgerTests
from .suite_lifecycle import LifecycleTests

#: The per-area modules (after SQLAlchemy's testing/suite/test_*.py).
AREAS = (
    LifecycleTests,
    GuardTests,
    DocumentTests,
    CanvasTests,
    JobTests,
    InputTests,
    LedgerTests,
)


class StorageConformance(
    LifecycleTests, GuardTests, DocumentTests, CanvasTests, JobTests, InputTests, LedgerTests
):
    """The conformance suite. Subclass it in a test module (``Test...``) and
    provide the ``db`` fixture and a ``database_url`` fixture (or override
    ``database_factory``)."""

    @pytest.fixture
    def database_factory(self, database_url: str) -> Iterator[Callable[..., Database]]:
        """Opens the ``database_url`` database with ``open_database`` options
        (e.g. ``guard=``) and migrates it; closed after the test."""
        opened: list[Database] = []

        def factory(**options: Any) -> Database:
            database = open_database(database_url, **options)
            opened.append(database)
            database.run_migrations()
            return database

        yield factory
        for database in opened:
            database.close()
