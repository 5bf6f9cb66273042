"""The only exceptions that leave Handshake Storage.

Backend adapters translate every driver exception into one of these, so a
caller can handle failures without knowing which database is underneath.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by the storage layer.

    ``code`` is the project's code (``HSK-...``). An error translated from
    the database also carries structured, scrubbed facts, ``None`` where
    unknown: ``backend`` ("sqlite" | "postgresql"), ``backend_code`` (the
    SQLSTATE or SQLite result code name), ``table`` and ``constraint``. It
    never carries the driver's exception (``__cause__`` is ``None``): that
    could hold a password.
    """

    code: str = "HSK-500-STORAGE"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        backend: str | None = None,
        backend_code: str | None = None,
        table: str | None = None,
        constraint: str | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.backend = backend
        self.backend_code = backend_code
        self.table = table
        self.constraint = constraint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotFoundError(StorageError):
    """The addressed row does not exist."""

    code = "HSK-404-NOT-FOUND"


class ConflictError(StorageError):
    """The write collides with existing data (duplicate key, concurrent change)."""

    code = "HSK-409-CONFLICT"


class ValidationError(StorageError):
    """The input is malformed or cannot be stored identically on every backend.

    Raised before anything is written.
    """

    code = "HSK-422-VALIDATION"


class GuardError(StorageError):
    """The mutation guard refused a write (the "no silent edits" rule)."""

    code = "HSK-403-SILENT-EDIT"

    def __init__(self, message: str = "HSK-403-SILENT-EDIT", *, code: str | None = None) -> None:
        super().__init__(message, code=code)


class BackendUnavailableError(StorageError):
    """The database cannot be reached, is busy past the timeout, or refuses writes."""

    code = "HSK-503-UNAVAILABLE"


class AuthenticationError(BackendUnavailableError):
    """The server refused the login (wrong password, unknown role, no
    password given where one is required). Retrying will not help; the
    message names the user and the server, never the password."""

    code = "HSK-401-AUTHENTICATION"


class CorruptDataError(StorageError):
    """A stored value the API cannot read: written by another tool (a
    malformed timestamp text, invalid JSON text, an unknown enum string).
    ``table``, ``column`` and ``row_id`` say where it is."""

    code = "HSK-500-CORRUPT-DATA"

    def __init__(self, message: str, *, table: str, column: str, row_id: object) -> None:
        super().__init__(message, table=table)
        self.column = column
        self.row_id = row_id


class MigrationError(StorageError):
    """The schema history and the shipped migrations disagree, or a migration failed."""

    code = "HSK-500-MIGRATION"


__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "ConflictError",
    "CorruptDataError",
    "GuardError",
    "MigrationError",
    "NotFoundError",
    "StorageError",
    "ValidationError",
]
