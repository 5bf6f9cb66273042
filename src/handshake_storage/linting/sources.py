"""Which files a run lints, in which order, and the rules about the set of files
(HS002-HS005): siblings, version sequence, readability."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..declarations import DOWN_FILE, MIGRATION_FILE
from .rule import Finding, Rule

HS002 = Rule(
    "HS002",
    "up migration has no NNNN_description.down.sql sibling",
    "add the matching NNNN_description.down.sql that reverts it",
    "up migration without its ``.down.sql`` sibling",
    suppressible=False,
)
HS003 = Rule(
    "HS003",
    "down migration has no matching up migration",
    "rename it to match its up migration, or delete it",
    "down migration without its up migration",
    suppressible=False,
)
HS004 = Rule(
    "HS004",
    "migration versions in a directory repeat or leave a gap",
    "number the migrations 0001, 0002, ... without repeats or gaps",
    "versions in a linted directory repeat or leave a gap",
    suppressible=False,
)
HS005 = Rule(
    "HS005",
    "file cannot be read as UTF-8 text",
    "save the file as UTF-8",
    "file cannot be read as UTF-8 text (or does not exist)",
    suppressible=False,
)


@dataclass(frozen=True)
class Source:
    entry: Any  # Path or importlib.resources Traversable
    display: str
    name: str


def shipped() -> Any:
    return resources.files("handshake_storage").joinpath("migrations")


def collect(paths: list[Path] | None, findings: list[Finding]) -> list[Source]:
    """The files to lint (default: the shipped migrations), each once."""
    if paths is None:
        return directory(shipped(), findings)
    sources: list[Source] = []
    seen: set[str] = set()
    for path in map(Path, paths):
        if path.is_dir():
            new = directory(path, findings)
        elif path.is_file():
            new = [Source(path, str(path), path.name)]
        else:
            findings.append(HS005.finding(str(path), "no such file or directory"))
            continue
        for source in new:
            if key(source.entry) not in seen:
                seen.add(key(source.entry))
                sources.append(source)
    return sources


def key(entry: Any) -> str:
    try:
        return str(Path(entry).resolve())
    except TypeError:
        return str(entry)


def directory(root: Any, findings: list[Finding]) -> list[Source]:
    """The ``*.sql`` files directly in ``root``, with HS004 for the sequence."""
    sources = [
        Source(entry, str(entry), entry.name)
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql") and entry.is_file()
    ]
    by_version: dict[int, list[Source]] = {}
    for source in sources:
        match = MIGRATION_FILE.match(source.name)
        if match:
            by_version.setdefault(int(match.group(1)), []).append(source)
    expected = 1
    for version in sorted(by_version):
        first, *repeats = by_version[version]
        for duplicate in repeats:
            message = f"version {version:04d} is also used by {first.name}"
            findings.append(HS004.finding(duplicate.display, message))
        if version != expected:
            message = f"version {version:04d} follows {expected - 1:04d}: {expected:04d} is missing"
            findings.append(HS004.finding(first.display, message))
        expected = version + 1
    return sources


def siblings(sources: list[Source]) -> list[Finding]:
    """HS002/HS003: an up file without its down file, or the reverse."""
    present = {(key(parent(s.entry)), s.name) for s in sources}
    findings = []
    for source in sources:
        if MIGRATION_FILE.match(source.name):
            sibling, rule, what = f"{source.name[:-4]}.down.sql", HS002, "has no down migration"
        elif DOWN_FILE.match(source.name):
            sibling, rule, what = f"{source.name[:-9]}.sql", HS003, "has no up migration"
        else:
            continue  # HS001, reported when the file is linted
        folder = parent(source.entry)
        if (key(folder), sibling) in present or folder.joinpath(sibling).is_file():
            continue
        findings.append(rule.finding(source.display, f"{source.name} {what} ({sibling})"))
    return findings


def parent(entry: Any) -> Any:
    folder = getattr(entry, "parent", None)
    return shipped() if folder is None else folder  # a Traversable without .parent


def version_order(source: Source) -> tuple[int, int, str]:
    match = MIGRATION_FILE.match(source.name) or DOWN_FILE.match(source.name)
    version = int(match.group(1)) if match else 1 << 30
    return version, int(source.name.endswith(".down.sql")), source.name


def read(source: Source, findings: list[Finding]) -> str | None:
    """The file's text, or None with an HS005 finding."""
    try:
        return source.entry.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        findings.append(HS005.finding(source.display, f"not valid UTF-8 (byte {exc.start})"))
    except OSError as exc:
        findings.append(HS005.finding(source.display, f"cannot read: {exc}"))
    return None
