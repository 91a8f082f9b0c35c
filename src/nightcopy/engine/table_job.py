"""What one table's copy is given (CopySettings) and what it gives back (TableOutcome)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nightcopy.engine.column_masks import MaskedTables
from nightcopy.engine.freshness import FreshnessCheck
from nightcopy.engine.shrink_guard import ShrinkPolicy
from nightcopy.engine.table_locks import LockRetryPolicy
from nightcopy.engine.trust import Trust
from nightcopy.options import (
    CANCEL_BLOCKERS_AFTER,
    LOCK_ATTEMPTS,
    LOCK_TIMEOUT,
    STRATEGY,
    SWAP_SCOPE,
    VERIFY,
)


@dataclass
class CopySettings:
    run_id: str
    group: str | None
    strategy: str = STRATEGY.default  # swap | truncate (defaults: nightcopy.options)
    verify: str = VERIFY.default  # count | checksum
    lock_timeout: float = LOCK_TIMEOUT.default  # seconds one lock wait may block readers behind it
    lock_attempts: int = LOCK_ATTEMPTS.default
    progress_every: float = 30.0
    swap_scope: str = SWAP_SCOPE.default  # table | linked | group (swap_units)
    cancel_blockers_after: float | None = CANCEL_BLOCKERS_AFTER.default  # seconds; None: never
    # What a materialized view the worker owns may call when it is refreshed (engine/matviews).
    trust: Trust = field(default_factory=Trust)
    # Which tables may not shrink beyond a threshold (engine/shrink_guard).
    shrink: ShrinkPolicy = field(default_factory=ShrinkPolicy)
    # The tables whose newest row is reported (engine/freshness), by (schema, name).
    freshness: dict[tuple[str, str], FreshnessCheck] = field(default_factory=dict)
    # Excluded and masked columns (engine/column_masks), resolved against the source.
    masks: MaskedTables = field(default_factory=MaskedTables)
    # Globs of column names an added column is flagged by in the drift report (lower case).
    sensitive_column_patterns: tuple[str, ...] = ()
    # Filled by the loads (engine/schema_drift.report), by table: the report file's
    # schema_changes, which the Slack notifier renders.
    schema_changes: dict[str, dict] = field(default_factory=dict)
    # Filled by the loads (engine/freshness.report), by table: the report file's
    # stale_tables, which the Slack notifier renders.
    stale_tables: dict[str, dict] = field(default_factory=dict)

    @property
    def lock_policy(self) -> LockRetryPolicy:
        return LockRetryPolicy(self.lock_timeout, self.lock_attempts)


@dataclass
class TableOutcome:
    table: str
    status: str  # copied | failed | skipped
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    index_seconds: float = 0.0
    analyze_seconds: float = 0.0
    lock_wait_seconds: float = 0.0
    format: str = "binary"
    attempts: int = 1
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    # a failure a second attempt could pass (invocation_report.is_transient); not an event field
    transient: bool = False

    def add_lock_wait(self, seconds: float) -> None:
        self.lock_wait_seconds += seconds

    def event_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "rows": self.rows, "bytes": self.bytes,
                               "seconds": round(self.seconds, 3),
                               "copy_seconds": round(self.copy_seconds, 3),
                               "index_seconds": round(self.index_seconds, 3),
                               "analyze_seconds": round(self.analyze_seconds, 3),
                               "lock_wait_seconds": round(self.lock_wait_seconds, 3),
                               "format": self.format, "attempts": self.attempts}
        if self.error:
            out["error"] = self.error
        return out
