"""What a rollback would destroy, so the CLI can ask before it does.

A down file that drops a canonical table holding rows destroys data; one that
drops an empty table, an index or a derived table (recomputable from the
canonical rows) does not, nor does dropping the replica id made at migrate
(``ledger.IDENTITY_TABLES``). The count is taken once to ask the user and again
under the migration lock (:func:`refuse_beyond`), so rows written after the
user said yes are never dropped on the strength of that yes.
"""

from __future__ import annotations

from collections.abc import Mapping

from .backends.base import AUTOCOMMIT, Session
from .declarations import dropped_tables
from .errors import MigrationError
from .ledger import IDENTITY_TABLES
from .migrator import Migrator, Plan, PlanCheck
from .rebuildable import derived_tables


def rows_at_risk(migrator: Migrator, session: Session, plan: Plan) -> dict[str, int]:
    """Canonical tables the plan drops that hold rows, with their row counts."""
    at_risk: dict[str, int] = {}
    for step in plan.steps:
        if step.direction != "down":
            continue
        derived = derived_tables(step.migration.version)  # as they were at that version
        for table in dropped_tables(step.sql):
            if table in derived or table in at_risk or table in IDENTITY_TABLES:
                continue
            if not migrator.adapter.has_table(session, table):
                continue
            count = session.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            if count:
                at_risk[table] = int(count)
    return at_risk


def rows_at_risk_now(migrator: Migrator, plan: Plan) -> dict[str, int]:
    if not plan.steps:
        return {}
    with migrator.adapter.transaction(AUTOCOMMIT) as session:
        return rows_at_risk(migrator, session, plan)


def refuse_beyond(migrator: Migrator, confirmed: Mapping[str, int]) -> PlanCheck:
    """A plan check that stops the rollback if, under the lock, it would drop
    more rows than the user confirmed."""

    def check(session: Session, plan: Plan) -> None:
        now = rows_at_risk(migrator, session, plan)
        grown = sorted(t for t, n in now.items() if n > confirmed.get(t, 0))
        if grown:
            raise MigrationError(
                f"table(s) {', '.join(grown)} gained rows after the rollback was confirmed; "
                "nothing was rolled back"
            )

    return check
