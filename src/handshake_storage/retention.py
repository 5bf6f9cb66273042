"""Retention of AI jobs, built only on the public storage interface.

A policy says how long terminal jobs live and how many of the newest are
always kept; the service turns it into one ``prune_ai_jobs`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .database import Database
from .errors import ValidationError
from .models import PruneReport


@dataclass(frozen=True)
class RetentionPolicy:
    window: timedelta = timedelta(days=30)
    min_versions: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.window, timedelta) or self.window < timedelta(0):
            raise ValidationError("retention window must be a non-negative timedelta")
        if isinstance(self.min_versions, bool) or not isinstance(self.min_versions, int):
            raise ValidationError("min_versions must be an integer")
        if self.min_versions < 0:
            raise ValidationError("min_versions must not be negative")


class RetentionService:
    """Applies a :class:`RetentionPolicy` to a database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def run(
        self, policy: RetentionPolicy, *, dry_run: bool = False, now: datetime | None = None
    ) -> PruneReport:
        """Prune terminal jobs older than the policy's window (relative to ``now``)."""
        moment = now if now is not None else datetime.now(UTC)
        if moment.tzinfo is None:
            raise ValidationError("now must be timezone-aware")
        try:
            cutoff = moment - policy.window
        except OverflowError:
            raise ValidationError("the retention window reaches before year 1") from None
        return self._db.prune_ai_jobs(cutoff, policy.min_versions, dry_run)
