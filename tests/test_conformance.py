"""The importable conformance suite, run on every backend of the conftest.

``db`` and ``database_url`` come from ``tests/conftest.py`` and are
parametrized over SQLite and PostgreSQL, so every test of
:class:`~handshake_storage.testing.StorageConformance` runs on both.
"""

from __future__ import annotations

from handshake_storage.testing import StorageConformance


class TestConformance(StorageConformance):
    pass
