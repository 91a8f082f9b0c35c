"""The shrink guard (issue 17): a table whose new copy holds far fewer rows than the reporting
copy it would replace is not replaced.

A nightly copy faithfully propagates the source's accidents (a migration that truncated a
table, a batch job that deleted most of a month); once swapped in, last night's good rows are
gone. nightcopy keeps the old table until the swap (or the truncate) commits, so it can refuse
at no cost: the table fails with one line, its swap unit keeps last night's rows (tables
swapped together stay together, table_workers), and the night's exit status is 1, so the
alarm and the Slack report say so.

When it decides:
- swap: after the staged copy is loaded, before its transaction commits (table_copy.load), so
  the swap unit never flips and the reporting table is untouched (same relfilenode);
- truncate: before TRUNCATE, in the unit's transaction, from a count(*) of the source in the
  run's snapshot (the rows COPY will read), so nothing changes on the target.

What it compares with: the rows the ledger recorded for the table's last successful copy, when
the table on the target is the one nightcopy put there (managed_tables, by oid); otherwise one
count(*) of the target table, said in the log. Never refused: a table new to the target, one
that is empty there, one whose reporting copy holds fewer than shrink_guard_min_rows rows, one
listed in allow_shrink, one whose threshold is off. The refusal is deterministic, so it is not
retried (a TableError; only lost connections are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from psycopg2.extensions import connection, cursor

from nightcopy.engine import ledger
from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.table_model import TableDef, TableRef
from nightcopy.engine.tablelist import TableEntry, TableSpec, parse_table_list
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.errors import ConfigError, TableError
from nightcopy.options import SHRINK_GUARD, SHRINK_GUARD_MIN_ROWS, ShrinkThreshold

# The ledger's row count of the table's latest successful copy (NULL: none recorded).
_LAST_COPIED_ROWS_SQL = f"""
SELECT (SELECT rows FROM {ledger.TABLE_RESULTS}
         WHERE table_name = %s AND status = 'copied' AND rows IS NOT NULL
         ORDER BY finished_at DESC LIMIT 1)"""


class ShrinkRefused(TableError):
    """The new copy would shrink the reporting copy beyond the threshold (not retried)."""


@dataclass(frozen=True)
class ShrinkPolicy:
    """What the guard refuses: the threshold (percent of rows that may go; "off": none), the
    size under which a table is never refused, the tables allowed to shrink tonight
    (--allow-shrink) and per-table thresholds (the object form of a table-list entry)."""
    threshold: ShrinkThreshold = SHRINK_GUARD.default
    min_rows: int = SHRINK_GUARD_MIN_ROWS.default
    allowed: tuple[TableSpec, ...] = ()
    per_table: Mapping[tuple[str, str], ShrinkThreshold] = field(default_factory=dict)

    def threshold_for(self, ref: TableRef) -> ShrinkThreshold:
        return self.per_table.get((ref.schema, ref.name), self.threshold)

    def allows(self, ref: TableRef) -> bool:
        return any(spec.matches(ref.schema, ref.name) for spec in self.allowed)


def parse_allow_shrink(value: str | None) -> tuple[TableSpec, ...]:
    """--allow-shrink TABLES: the table-list grammar (globs too: `sales.*` after a purge of a
    whole schema). ConfigError naming the option when it does not parse."""
    if value is None or not value.strip():
        return ()
    try:
        return tuple(parse_table_list(value))
    except ConfigError as exc:
        raise ConfigError(f"--allow-shrink (allow_shrink): {exc}") from None


def check_loaded(cur: cursor, events: EventWriter, policy: ShrinkPolicy, d: TableDef,
                 new_rows: int, old: TargetTable | None) -> None:
    """Raise ShrinkRefused when `new_rows` would shrink the reporting copy `old` (what the
    target holds under the table's name; None: the table is new there) beyond the threshold."""
    ref = d.ref
    threshold = policy.threshold_for(ref)
    if old is None or threshold == "off":
        return
    previous = _reporting_rows(cur, events, ref, old)
    if previous == 0 or previous < policy.min_rows or new_rows >= previous:
        return
    shrink = (previous - new_rows) * 100.0 / previous
    if shrink <= float(threshold):
        return
    if policy.allows(ref):
        events.warn(f"{ref.qualified}: the source has {new_rows:,} rows, the reporting copy "
                    f"{previous:,} (-{shrink:.1f} %); copied anyway (--allow-shrink)",
                    ref.qualified)
        return
    raise ShrinkRefused(
        f"{ref.qualified}: the source has {new_rows:,} rows, the reporting copy {previous:,} "
        f"(-{shrink:.1f} %); kept last night's copy; --shrink-guard off or --allow-shrink "
        f"{ref.qualified} to copy it anyway")


def check_before_truncate(src: connection, cur: cursor, events: EventWriter,
                          policy: ShrinkPolicy, d: TableDef, old: TargetTable) -> None:
    """--strategy truncate: the guard before TRUNCATE, from the source's count(*) in the run's
    snapshot (exactly the rows the COPY reads next: ONLY the table unless it is partitioned).
    The count is skipped when the guard cannot refuse the table anyway."""
    if policy.threshold_for(d.ref) == "off":
        return
    with src.cursor() as scur:
        rows = fetch_value(scur, f"SELECT count(*) FROM {'' if d.partkey else 'ONLY '}"
                                 f"{d.ref.qualified}")
    check_loaded(cur, events, policy, d, int(rows), old)


def _reporting_rows(cur: cursor, events: EventWriter, ref: TableRef, old: TargetTable) -> int:
    """The rows of the reporting copy: the ledger's count of the last successful copy when the
    table is the one nightcopy put there, else one count(*) of it (said in the log)."""
    if ledger.is_managed(cur, old.oid):
        recorded = fetch_value(cur, _LAST_COPIED_ROWS_SQL, (ref.qualified,))
        if recorded is not None:
            return int(recorded)
    only = "ONLY " if old.kind == "r" else ""  # a partitioned table: with its partitions
    counted = int(fetch_value(cur, f"SELECT count(*) FROM {only}{ref.qualified}"))
    events.say(f"nightcopy: {ref.qualified}: no successful copy recorded in the ledger for "
               f"the table on the target: counted its rows for the shrink guard ({counted:,})")
    return counted


def per_table_thresholds(entries: Sequence[TableEntry]
                         ) -> dict[tuple[str, str], ShrinkThreshold]:
    """The thresholds the list's object entries set (`"shrink_guard": 80`), by (schema, name);
    they win over the option for their table."""
    return {(e.spec.schema, e.spec.name): e.settings["shrink_guard"] for e in entries
            if "shrink_guard" in e.settings}
