"""One description per canonical table: the single place a column is named.

Each :class:`Table` lists its columns in the order the migration creates
them, with their codec (how the stored value becomes the API value), whether
they are nullable and which are the traceability columns, plus the table's
key and parent. Everything else that needs a table's shape derives it from
here, by column name:

- ``queries.py``: column lists (:attr:`Table.select_list`), INSERT
  statements with their placeholders (:attr:`Table.insert_sql`);
- ``models.py``: each result record's fields are located and decoded by
  name through the codecs (``Record`` subclasses pass ``table=``);
- ``database.py``: rows are built by name (:meth:`Table.row`,
  :meth:`Table.maker`) and read by name (:attr:`Table.at`); bulk loads use
  :attr:`Table.names` as their column order;
- ``transfer.py``: copy and digest column orders (checked against the live
  schema, so a migration and its description cannot drift apart).

Row images (for the change ledger): :meth:`Table.image` turns a stored row
(values in :attr:`Table.names` order, as the driver returns them) into a
``{column: JSON-able value}`` dict, and :meth:`Table.from_image` turns such
a dict back into a stored row, validating every value (an image may come from
another replica)::

    image = BLOCKS.image(row, adapter.decode_timestamp)
    row = BLOCKS.from_image(json.loads(json.dumps(image)), adapter.encode_timestamp)

JSON-able forms: text, integers, floats and booleans as themselves; UUIDs
and enums as their strings; timestamps as ISO 8601 text in UTC with
microseconds; JSON columns as the parsed document. Columns missing from an
image are NULL (refused if the column is NOT NULL); unknown keys are refused.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from . import schema
from . import validation as check
from .enums import AccessMode, JobState, SafetyMode, WriteActorKind
from .errors import CorruptDataError, StorageError, ValidationError

#: decode(stored_value, decode_timestamp) -> API value
Decoder = Callable[[Any, Callable[[Any], datetime]], Any]


def load_json(raw: str | None) -> Any:
    """Parse stored JSON text; corrupt text is a StorageError, not a ValueError."""
    if raw is None:
        return None
    if raw == "{}":
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"stored JSON is corrupt or too deeply nested: {exc}") from None


#: What a stored value of each codec kind must be, for messages.
_EXPECTED = {
    "timestamp": "a timestamp",
    "json": "valid JSON of the expected shape",
    "enum": "one of the known values",
    "uuid": "a UUID",
}


def undecodable(table: str, column: str, kind: str, row_id: object, raw: Any) -> CorruptDataError:
    """The error for a stored value that cannot be decoded: names the table,
    column and row, the same words on every backend."""
    shown = repr(raw)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    expected = _EXPECTED.get(kind, f"a {kind}")
    return CorruptDataError(
        f"{table}.{column} of row {row_id!r} holds {shown}, which is not {expected} "
        "(written by another tool?); it cannot be read",
        table=table,
        column=column,
        row_id=row_id,
    )


# -- codecs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """How one kind of column is stored, read back and imaged.

    ``decode`` turns a stored non-NULL value into the API value (``None``:
    the stored value is the API value); ``to_json`` turns a stored non-NULL
    value into its JSON-able image and ``from_json`` an image value (already
    checked non-NULL) back into the stored form, validating it.
    """

    kind: str
    family: str  # the schema type family of the stored column (schema.TEXT, ...)
    decode: Decoder | None
    to_json: Callable[[Any, Callable[[Any], datetime]], Any]
    from_json: Callable[[Any, Callable[[datetime], Any], str], Any]


def _as_is(raw: Any, ts: Any) -> Any:
    return raw


def _timestamp_image(raw: Any, ts: Callable[[Any], datetime]) -> str:
    return ts(raw).astimezone(UTC).isoformat(timespec="microseconds")


def _timestamp_from_json(value: Any, enc: Callable[[datetime], Any], name: str) -> Any:
    if type(value) is str:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{name} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    return enc(check.timestamp(value, name))


def _enum(cls: type[Enum]) -> Codec:
    members = {m.value: m for m in cls}

    def decode(raw: Any, ts: Any) -> Any:
        return members[raw]

    return Codec(
        "enum",
        schema.TEXT,
        decode,
        _as_is,
        lambda value, enc, name: check.enum(cls, value, name).value,
    )


TEXT = Codec("text", schema.TEXT, None, _as_is, lambda v, enc, name: check.text(v, name))
INTEGER = Codec(
    "integer", schema.INTEGER, None, _as_is, lambda v, enc, name: check.integer(v, name)
)
FLOAT = Codec("float", schema.FLOAT, None, _as_is, lambda v, enc, name: check.number(v, name))
BOOLEAN = Codec(
    "boolean",
    schema.BOOLEAN,
    lambda raw, ts: bool(raw),
    lambda raw, ts: bool(raw),
    lambda v, enc, name: check.boolean(v, name),
)
TIMESTAMP = Codec(
    "timestamp",
    schema.TIMESTAMP,
    lambda raw, ts: ts(raw),
    _timestamp_image,
    _timestamp_from_json,
)
UUID_TEXT = Codec(
    "uuid",
    schema.TEXT,
    lambda raw, ts: UUID(raw),
    _as_is,
    lambda v, enc, name: str(check.uuid(v, name)),
)
JSON = Codec(
    "json",
    schema.TEXT,
    lambda raw, ts: load_json(raw),
    lambda raw, ts: load_json(raw),
    lambda v, enc, name: check.json_text(v, name),
)
ACTOR_KIND = _enum(WriteActorKind)
JOB_STATE = _enum(JobState)
ACCESS_MODE = _enum(AccessMode)
SAFETY_MODE = _enum(SafetyMode)


# -- columns and tables -----------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


def _stored_timestamp(value: Any, name: str) -> None:
    if type(value) is not str:
        raise ValidationError(f"{name} must be ISO 8601 text, not {type(value).__name__}")
    _timestamp_from_json(value, _identity, name)


def _stored_boolean(value: Any, name: str) -> None:
    if type(value) is int and value in (0, 1):  # SQLite's stored form
        return
    check.boolean(value, name)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


#: Built once: json.loads with parse_constant builds a decoder per call.
_STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant)
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _stored_json(value: Any, name: str) -> None:
    text = check.text(value, name)
    if text == "{}":
        return
    try:
        document = _STRICT_JSON.decode(text)
    except (ValueError, RecursionError):
        raise ValidationError(f"{name} is not valid JSON text") from None
    check.json_text(document, name)  # what the API would have refused


def _stored_uuid(value: Any, name: str) -> None:
    if type(value) is not str or _UUID_TEXT.match(value) is None:  # not the form we write
        check.uuid(value, name)


#: Codec kind -> the check of a stored value as a change set's row carries
#: it (JSON text for JSON columns, ISO text for timestamps, 0/1 or a bool
#: for booleans); the other kinds are checked by their ``from_json``.
_STORED_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "timestamp": _stored_timestamp,
    "boolean": _stored_boolean,
    "json": _stored_json,
    "uuid": _stored_uuid,
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    codec: Codec
    nullable: bool = False
    #: one of the mutation traceability columns written by the storage guard
    trace: bool = False

    @property
    def stored_check(self) -> Callable[[Any, str], None]:
        """The check of a non-null stored value (in its JSON form) this column
        must refuse: one it could not hold, or that a backend would store
        differently or not at all (ValidationError naming the label). For
        values from another replica (a change set's rows), checked before any
        statement runs, so every backend refuses the same values alike; NULL
        is :meth:`Table.check_stored`'s to judge (``nullable``)."""
        stored = _STORED_CHECKS.get(self.codec.kind)
        if stored is not None:
            return stored
        from_json = self.codec.from_json
        return lambda value, label: from_json(value, _identity, label)

    @property
    def decoder(self) -> Decoder | None:
        """The codec's decoder, passing NULL through when the column is nullable."""
        decode = self.codec.decode
        if decode is None or not self.nullable:
            return decode

        def nullable(raw: Any, ts: Any) -> Any:
            return None if raw is None else decode(raw, ts)

        return nullable


@dataclass(frozen=True, slots=True)
class Parent:
    """The row a row belongs to (ON DELETE CASCADE): ``column`` refers to
    ``table``'s key; ``what`` names it in messages ("document")."""

    column: str
    table: str
    what: str


class Table:
    """A canonical table: its columns in migration order, key and parent."""

    def __init__(
        self,
        name: str,
        what: str,
        columns: Sequence[Column],
        *,
        key: str = "id",
        parent: Parent | None = None,
    ) -> None:
        self.name = name
        #: how messages name one row ("block")
        self.what = what
        self.columns = tuple(columns)
        self.key = key
        self.parent = parent
        self.names: tuple[str, ...] = tuple(c.name for c in self.columns)
        if len(set(self.names)) != len(self.names):
            raise TypeError(f"{name}: a column is described twice")
        for column_name in self.names:
            if not column_name.isidentifier() or keyword.iskeyword(column_name):
                raise TypeError(f"{name}.{column_name}: not usable as a Python name")
        #: column name -> position in a stored row
        self.at: Mapping[str, int] = {n: i for i, n in enumerate(self.names)}
        self.by_name: Mapping[str, Column] = {c.name: c for c in self.columns}
        #: name -> (check of a non-null stored value, nullable, label), built
        #: once for the rows a sync batch brings
        self._stored_checks = {
            c.name: (c.stored_check, c.nullable, f"{name}.{c.name}") for c in self.columns
        }
        if key not in self.at or (parent is not None and parent.column not in self.at):
            raise TypeError(f"{name}: key or parent column is not described")
        self.trace_names: tuple[str, ...] = tuple(c.name for c in self.columns if c.trace)
        self.select_list = ", ".join(self.names)
        self.placeholders = ", ".join("?" * len(self.names))
        self.insert_sql = f"INSERT INTO {name} ({self.select_list}) VALUES ({self.placeholders})"
        self.row: Callable[..., tuple[Any, ...]] = self._generate("row", self.names, True)
        """``row(**values)`` -> a stored row; omitted nullable columns are NULL."""

    def __repr__(self) -> str:
        return f"Table({self.name!r})"

    def qualified(self, alias: str) -> str:
        """The column list with each name prefixed by ``alias.``."""
        return ", ".join(f"{alias}.{n}" for n in self.names)

    def maker(self, *names: str, tail: Sequence[str] = ()) -> Callable[..., tuple[Any, ...]]:
        """A function taking the values of ``names`` positionally and returning
        the stored row (omitted nullable columns are NULL): for loops over
        many rows, where a keyword call per row would cost more than the
        row's insert (bench/). The names are checked here, once.

        ``tail``: the table's last columns (e.g. :data:`STAMP`), whose values
        come as one tuple, the last argument, shared by every row of a call:
        appended as it is, without unpacking it into arguments per row."""
        if tail and tuple(tail) != self.names[len(self.names) - len(tail) :]:
            raise TypeError(f"{self.name}: {list(tail)} are not its last columns")
        return self._generate("make", names, False, tuple(tail))

    def _generate(
        self, fn: str, names: Sequence[str], keywords: bool, tail: tuple[str, ...] = ()
    ) -> Callable[..., tuple[Any, ...]]:
        unknown = [n for n in (*names, *tail) if n not in self.at]
        if unknown or len(set(names) | set(tail)) != len(names) + len(tail):
            raise TypeError(f"{self.name}: unknown or repeated columns {unknown or list(names)}")
        missing = [
            n
            for n in self.names
            if n not in names and n not in tail and not self.by_name[n].nullable
        ]
        if missing:
            raise TypeError(f"{self.name}: no value for NOT NULL column(s) {missing}")
        if keywords:  # every column by keyword; the nullable ones default to NULL
            required = [n for n in self.names if not self.by_name[n].nullable]
            optional = [f"{n}=None" for n in self.names if self.by_name[n].nullable]
            params = ", ".join(["*", *required, *optional])
            items = ", ".join(self.names)
        else:
            given = set(names) | set(tail)
            params = ", ".join((*names, "tail") if tail else names)
            head = self.names[: len(self.names) - len(tail)]
            items = ", ".join(n if n in given else "None" for n in head)
        body = f"({items},) + tail" if tail else f"({items},)"
        namespace: dict[str, Any] = {}
        exec(f"def {fn}({params}):\n    return {body}\n", namespace)
        made: Callable[..., tuple[Any, ...]] = namespace[fn]
        made.__qualname__ = f"{self.name}.{fn}"
        return made

    # -- row images (the change ledger) ---------------------------------------

    def image(self, row: Sequence[Any], decode_timestamp: Callable[[Any], datetime]) -> dict:
        """The stored ``row`` (values in :attr:`names` order) as
        ``{column: JSON-able value}``; CorruptDataError for a value that
        cannot be decoded."""
        image = {}
        for c, value in zip(self.columns, row, strict=False):
            try:
                image[c.name] = None if value is None else c.codec.to_json(value, decode_timestamp)
            except Exception:
                raise self.undecodable(c.name, row, value) from None
        return image

    def check_stored(self, columns: Sequence[str], values: Sequence[Any]) -> None:
        """Check a row of stored values (``values`` in ``columns`` order, as a
        change set's ``put`` rows carry them): see :attr:`Column.stored_check`."""
        checks = self._stored_checks
        for name, value in zip(columns, values, strict=True):
            entry = checks.get(name)
            if entry is None:  # a live column the description lacks has no codec to ask
                continue
            check, nullable, label = entry
            if value is not None:
                check(value, label)
            elif not nullable:
                raise ValidationError(f"{label} must not be null")

    def undecodable(self, column: str, row: Sequence[Any], raw: Any) -> CorruptDataError:
        """The error for ``row``'s stored ``column`` value ``raw`` that cannot be decoded."""
        key = row[self.at[self.key]] if len(row) > self.at[self.key] else None
        return undecodable(self.name, column, self.by_name[column].codec.kind, key, raw)

    def from_image(
        self, image: Mapping[str, Any], encode_timestamp: Callable[[datetime], Any]
    ) -> tuple[Any, ...]:
        """The stored row an :meth:`image` describes; ValidationError naming
        ``table.column`` for a value this table cannot store."""
        if not isinstance(image, Mapping):
            raise ValidationError(f"a {self.name} row image must be a mapping")
        unknown = sorted(str(k) for k in image if k not in self.at)
        if unknown:
            raise ValidationError(f"{self.name} has no column(s) {', '.join(unknown)}")
        values = []
        for c in self.columns:
            value = image.get(c.name)
            label = f"{self.name}.{c.name}"
            if value is None:
                if not c.nullable:
                    raise ValidationError(f"{label} must not be null")
                values.append(None)
            else:
                values.append(c.codec.from_json(value, encode_timestamp, label))
        return tuple(values)


def _stamp() -> list[Column]:
    """The timestamps and traceability columns every content table ends with."""
    return [
        Column("created_at", TIMESTAMP),
        Column("updated_at", TIMESTAMP),
        Column("last_actor_kind", ACTOR_KIND, trace=True),
        Column("last_actor_id", TEXT, nullable=True, trace=True),
        Column("last_job_id", UUID_TEXT, nullable=True, trace=True),
        Column("last_workflow_id", UUID_TEXT, nullable=True, trace=True),
        Column("edit_event_id", UUID_TEXT, trace=True),
    ]


#: The columns every insert into a content table stamps from the write's
#: MutationMetadata, in this order (see Database._stamp).
STAMP = tuple(c.name for c in _stamp())

WORKSPACES = Table(
    "workspaces",
    "workspace",
    [Column("id", TEXT), Column("name", TEXT), *_stamp()],
)
DOCUMENTS = Table(
    "documents",
    "document",
    [Column("id", TEXT), Column("workspace_id", TEXT), Column("title", TEXT), *_stamp()],
    parent=Parent("workspace_id", "workspaces", "workspace"),
)
BLOCKS = Table(
    "blocks",
    "block",
    [
        Column("id", TEXT),
        Column("document_id", TEXT),
        Column("kind", TEXT),
        Column("sequence", INTEGER),
        Column("raw_content", TEXT),
        Column("display_content", TEXT),
        Column("derived_content", JSON),
        *_stamp(),
    ],
    parent=Parent("document_id", "documents", "document"),
)
CANVASES = Table(
    "canvases",
    "canvas",
    [Column("id", TEXT), Column("workspace_id", TEXT), Column("title", TEXT), *_stamp()],
    parent=Parent("workspace_id", "workspaces", "workspace"),
)
CANVAS_NODES = Table(
    "canvas_nodes",
    "canvas node",
    [
        Column("id", TEXT),
        Column("canvas_id", TEXT),
        Column("ordinal", INTEGER),
        Column("kind", TEXT),
        Column("position_x", FLOAT),
        Column("position_y", FLOAT),
        Column("data", JSON),
        *_stamp(),
    ],
    parent=Parent("canvas_id", "canvases", "canvas"),
)
CANVAS_EDGES = Table(
    "canvas_edges",
    "canvas edge",
    [
        Column("id", TEXT),
        Column("canvas_id", TEXT),
        Column("ordinal", INTEGER),
        Column("from_node_id", TEXT),
        Column("to_node_id", TEXT),
        Column("kind", TEXT),
        *_stamp(),
    ],
    parent=Parent("canvas_id", "canvases", "canvas"),
)
AI_JOBS = Table(
    "ai_jobs",
    "AI job",
    [
        Column("id", UUID_TEXT),
        Column("trace_id", UUID_TEXT),
        Column("workflow_run_id", UUID_TEXT, nullable=True),
        Column("job_kind", TEXT),
        Column("status", JOB_STATE),
        Column("status_reason", TEXT),
        Column("error_message", TEXT, nullable=True),
        Column("protocol_id", TEXT),
        Column("profile_id", TEXT),
        Column("capability_profile_id", TEXT),
        Column("access_mode", ACCESS_MODE),
        Column("safety_mode", SAFETY_MODE),
        Column("entity_refs", JSON),
        Column("planned_operations", JSON),
        Column("metrics", JSON),
        Column("job_inputs", JSON, nullable=True),
        Column("job_outputs", JSON, nullable=True),
        Column("is_pinned", BOOLEAN),
        Column("created_at", TIMESTAMP),
        Column("updated_at", TIMESTAMP),
    ],
)
WORKFLOW_RUNS = Table(
    "workflow_runs",
    "workflow run",
    [
        Column("id", UUID_TEXT),
        Column("job_id", UUID_TEXT),
        Column("status", JOB_STATE),
        Column("error_message", TEXT, nullable=True),
        Column("last_heartbeat", TIMESTAMP),
        Column("created_at", TIMESTAMP),
        Column("updated_at", TIMESTAMP),
    ],
    parent=Parent("job_id", "ai_jobs", "AI job"),
)
WORKFLOW_NODE_EXECUTIONS = Table(
    "workflow_node_executions",
    "node execution",
    [
        Column("id", UUID_TEXT),
        Column("workflow_run_id", UUID_TEXT),
        Column("node_id", TEXT),
        Column("node_type", TEXT),
        Column("status", JOB_STATE),
        Column("sequence", INTEGER),
        Column("input_payload", JSON, nullable=True),
        Column("output_payload", JSON, nullable=True),
        Column("error_message", TEXT, nullable=True),
        Column("started_at", TIMESTAMP),
        Column("finished_at", TIMESTAMP, nullable=True),
        Column("created_at", TIMESTAMP),
        Column("updated_at", TIMESTAMP),
    ],
    parent=Parent("workflow_run_id", "workflow_runs", "workflow run"),
)

#: Every canonical table, parents before children (foreign-key order).
CANONICAL: tuple[Table, ...] = (
    WORKSPACES,
    DOCUMENTS,
    BLOCKS,
    CANVASES,
    CANVAS_NODES,
    CANVAS_EDGES,
    AI_JOBS,
    WORKFLOW_RUNS,
    WORKFLOW_NODE_EXECUTIONS,
)
BY_NAME: Mapping[str, Table] = {t.name: t for t in CANONICAL}
#: The content tables: written under a WriteContext, carrying traceability.
CONTENT: tuple[Table, ...] = tuple(t for t in CANONICAL if t.trace_names)


def described(names: Iterable[str]) -> list[Table]:
    """The descriptions of those of ``names`` that are canonical tables."""
    return [BY_NAME[n] for n in names if n in BY_NAME]
