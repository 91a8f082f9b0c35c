"""The worker's JSON-lines events and its report file, declared once.

Every line `nightcopy copy` prints on stdout is one event: the envelope (`event`, `run_id`,
`group`), the event's own fields in the order declared here, then `ts`. These names, their
order and their JSON types are a frozen contract: CloudWatch Logs Insights queries, `nightcopy
run`, `history --from-logs`, the notifier and outside checks read them. The emitter
(nightcopy.engine.events) checks each event against this declaration; docs/events.md is
generated from it (nightcopy.engine.event_doc).

Vocabulary: a *run* is the night (one run id shared by every group), an *invocation* is one
group's worker (one `nightcopy copy` process), a *ledger row* is a row of schema nightcopy.

Plain data and stdlib only: the worker stays small and the checker costs microseconds per line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# JSON types as the doc shows them -> the Python values json.dumps turns into them.
_PY_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array of strings": (list,),
    "array of objects": (list,),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a key of _PY_TYPES
    meaning: str
    required: bool = True  # absent when not required (never present with an empty value)
    nullable: bool = False  # may be JSON null
    values: tuple[str, ...] = ()  # the only values a string may take, when fixed

    def problem(self, value: Any) -> str | None:
        """Why `value` does not fit this field, or None."""
        if value is None:
            return None if self.nullable else f"field {self.name!r} is null"
        # bool is an int in Python but not an integer or number in JSON.
        if (isinstance(value, bool) and self.type != "boolean") or \
                not isinstance(value, _PY_TYPES[self.type]):
            return f"field {self.name!r} is {type(value).__name__}, declared {self.type}"
        if self.type == "array of strings" and isinstance(value, list) and \
                not all(isinstance(v, str) for v in value):
            return f"field {self.name!r} holds a non-string, declared {self.type}"
        if self.values and value not in self.values:
            return f"field {self.name!r} is {value!r}, declared one of {', '.join(self.values)}"
        return None


@dataclass(frozen=True)
class EventSpec:
    name: str
    meaning: str
    fields: tuple[Field, ...]  # between the envelope's head and `ts`, in output order


# ------------------------------------------------------------------------ event names
RUN_STARTED: Final = "run_started"
TABLE_SKIPPED: Final = "table_skipped"
TABLE_FORMAT: Final = "table_format"
TABLE_STARTED: Final = "table_started"
TABLE_PROGRESS: Final = "table_progress"
TABLE_COPIED: Final = "table_copied"
TABLE_FAILED: Final = "table_failed"
WARNING: Final = "warning"
TABLE_FRESHNESS: Final = "table_freshness"
SCHEMA_CHANGED: Final = "schema_changed"
RUN_SUMMARY: Final = "run_summary"
TABLE_PLANNED: Final = "table_planned"
DRY_RUN_SUMMARY: Final = "dry_run_summary"

# --------------------------------------------------------------------------- fields
ENVELOPE_HEAD: Final = (
    Field("event", "string", "the event's name (one of the events below)"),
    Field("run_id", "string", "the run (the night) this invocation belongs to; every group of "
          "a night shares it, and a retried invocation keeps it to resume"),
    Field("group", "string", "the invocation's group (`--group`); null when none was given",
          nullable=True),
)
ENVELOPE_TAIL: Final = (
    Field("ts", "number", "Unix time in seconds (3 decimals) when the line was written"),
)
ENVELOPE_NAMES: Final = frozenset(f.name for f in ENVELOPE_HEAD + ENVELOPE_TAIL)

_TABLE = Field("table", "string", "the table, as `schema.table` with identifiers quoted where "
               "needed (`format('%I.%I')`)")
_STRATEGIES = ("swap", "truncate")
_FORMATS = ("binary", "text")
_STATUSES = ("succeeded", "failed")


def _outcome_fields(*, with_error: bool) -> tuple[Field, ...]:
    """table_copied and table_failed carry the same figures (TableOutcome.event_fields)."""
    fields: tuple[Field, ...] = (
        _TABLE,
        Field("rows", "integer", "rows copied (0 when the table failed)"),
        Field("bytes", "integer", "bytes streamed by COPY"),
        Field("seconds", "number", "the table's whole time: lock waits, DDL, COPY, indexes, "
              "ANALYZE, swap"),
        Field("copy_seconds", "number", "time in COPY"),
        Field("index_seconds", "number", "time building keys and indexes"),
        Field("analyze_seconds", "number", "time in ANALYZE"),
        Field("lock_wait_seconds", "number", "time waiting for the target's locks"),
        Field("format", "string", "COPY format used", values=_FORMATS),
        Field("attempts", "integer", "tries, 1 unless a lost connection was retried"),
    )
    if with_error:
        fields += (Field("error", "string", "one line naming the problem and the fix"),)
    return fields


EVENTS: Final[dict[str, EventSpec]] = {spec.name: spec for spec in (
    EventSpec(RUN_STARTED, "the invocation checked its input and starts copying (first line)", (
        Field("tables", "integer", "tables of this invocation after glob expansion, including "
              "those already copied by this run id"),
        Field("jobs", "integer", "tables copied at once (`--jobs`)"),
        Field("strategy", "string", "how tables are replaced (`--strategy`)", values=_STRATEGIES),
        Field("verify", "string", "what is checked before the swap (`--verify`)",
              values=("count", "checksum")),
        Field("snapshot", "string", "the exported source snapshot every table is read in"),
        Field("resumed", "integer", "tables skipped because this run id already copied them"),
    )),
    EventSpec(TABLE_SKIPPED, "a table this run id already copied: a retried invocation resumes", (
        _TABLE,
        Field("reason", "string", "why it is skipped"),
    )),
    EventSpec(TABLE_FORMAT, "a table goes as text: its binary form is not portable", (
        _TABLE,
        Field("format", "string", "the COPY format chosen", values=("text",)),
        Field("reason", "string", "the column and type that need it"),
    )),
    EventSpec(TABLE_STARTED, "a worker thread starts (or retries) a table", (
        _TABLE,
        Field("attempt", "integer", "1 for the first try, more after a lost connection"),
        Field("size_bytes", "integer", "the source table's size on disk (largest go first)"),
    )),
    EventSpec(TABLE_PROGRESS, "a long COPY is still streaming (every 30 seconds)", (
        _TABLE,
        Field("bytes", "integer", "bytes streamed so far"),
        Field("seconds", "number", "seconds since this table's COPY began"),
    )),
    EventSpec(TABLE_COPIED, "a table was copied, verified and swapped in (committed)",
              _outcome_fields(with_error=False)),
    EventSpec(TABLE_FAILED, "a table failed; the target's table stays as it was",
              _outcome_fields(with_error=True)),
    EventSpec(WARNING, "something worth knowing that fails nothing (also said on stderr)", (
        Field("table", "string", "the table concerned; null for the invocation as a whole",
              nullable=True),
        Field("message", "string", "the warning, one line"),
    )),
    EventSpec(SCHEMA_CHANGED, "the table's source definition changed since its last successful "
              "copy (the ledger's table_definitions); said before it is loaded, whether or not "
              "the copy then succeeds", (
        _TABLE,
        Field("changes", "array of strings", "one phrase per change: `column x added (text)`, "
              "`column x dropped`, `column x renamed to y`, `column x retyped a -> b`, "
              "`index i added` / `dropped` / `changed: ...`, the same for constraints and "
              "partitions; for a table a glob newly matches or no longer matches "
              "(engine/glob_drift.py): `table added: newly matched by GLOB` / `table gone: no "
              "longer matched by GLOB (...)`; for one it copied that an exclusion "
              "(`exclude_table`) now leaves out: `table left out: excluded by PATTERN (...)`"),
        Field("views", "array of strings", "target views reading the table, when a column "
              "was dropped, renamed or retyped: they may break"),
    )),
    EventSpec(TABLE_FRESHNESS, "the newest value of a table's freshness column (set in its "
              "table-list entry; docs/tables.md), read from the rows just loaded", (
        _TABLE,
        Field("column", "string", "the freshness column (`freshness_column`)"),
        Field("newest", "string", "its newest value (ISO 8601, UTC); null when the table has "
              "no rows with a value", nullable=True),
        Field("age_seconds", "number", "how old the newest value is, in seconds", nullable=True),
        Field("max_age_seconds", "number", "the entry's `max_age` in seconds; null when none is "
              "set", nullable=True),
        Field("stale", "boolean", "older than max_age (or no value at all): also a warning"),
    )),
    EventSpec(RUN_SUMMARY, "the invocation is done (last line); exit status 0 iff succeeded", (
        Field("status", "string", "succeeded when every table was copied (or skipped)",
              values=_STATUSES),
        Field("tables", "integer", "tables of this invocation (copied, skipped and failed)"),
        Field("failed", "integer", "tables that failed"),
        Field("rows", "integer", "rows copied by this invocation"),
        Field("bytes", "integer", "bytes streamed by this invocation"),
        Field("seconds", "number", "this invocation's wall-clock time"),
        Field("failed_tables", "array of strings", "the failed tables, in list order"),
        Field("snapshot_age_seconds", "number", "with a hot standby (read replica) as the "
              "source: how old the snapshot's data was, the time since the last commit the "
              "replica had replayed when the snapshot was taken", required=False),
        Field("report", "string", "where the report file was written (with `--report-uri`)",
              required=False),
        Field("report_error", "string", "why the report file could not be written (the "
              "invocation then fails)", required=False),
        Field("interrupted", "boolean", "true when the worker was stopped (Ctrl-C, SIGTERM) "
              "before it finished: status failed, `failed_tables` the tables not copied yet "
              "(as they were on the target), rows and bytes 0 (the ledger has the copied "
              "tables'); the same run id resumes", required=False),
    )),
    EventSpec(TABLE_PLANNED, "`--dry-run`: what the invocation would do with one table (in "
              "list order, after glob expansion and exclusions); nothing is written", (
        _TABLE,
        Field("kind", "string", "`table` or `partitioned table` (its partitions come with it)"),
        Field("size_bytes", "integer", "the source table's size on disk"),
        Field("rows_estimate", "integer", "the source planner's row estimate (pg_class."
              "reltuples); null for a table never analyzed", nullable=True),
        Field("action", "string", "copy; skip (this run id already copied it: a resume); fail "
              "(the night would fail it, `reason` says why)", values=("copy", "skip", "fail")),
        Field("swapped_with", "array of strings", "the other tables swapped in the same "
              "transaction (`--swap-scope`); empty when it flips alone"),
        Field("reason", "string", "why the table would fail or be skipped", required=False),
    )),
    EventSpec(DRY_RUN_SUMMARY, "`--dry-run` is done (last line); exit status 0 iff no table "
              "would fail", (
        Field("status", "string", "succeeded when no table would fail", values=_STATUSES),
        Field("tables", "integer", "tables of this invocation after glob expansion"),
        Field("copy", "integer", "tables it would copy"),
        Field("skip", "integer", "tables it would skip (already copied by this run id)"),
        Field("fail", "integer", "tables that would fail"),
        Field("size_bytes", "integer", "the tables' size on the source"),
        Field("jobs", "integer", "tables copied at once (`--jobs`)"),
        Field("strategy", "string", "how tables would be replaced", values=_STRATEGIES),
        Field("swap_scope", "string", "which tables flip together (`--swap-scope`)",
              values=("table", "linked", "group")),
        Field("snapshot", "string", "how the source would be read: one exported snapshot, by "
              "how many sessions"),
        Field("failed_tables", "array of strings", "the tables that would fail, in list order"),
    )),
)}

# ------------------------------------------------------------------ the report file
# `--report-uri` writes PREFIX/RUN_ID/GROUP.json for the notifier: run_summary's figures (without
# `report`/`report_error`, which say how writing it went), its times and one row per table.
REPORT_RESULT_FIELDS: Final = (
    _TABLE,
    Field("status", "string", "what happened to the table", values=("copied", "failed",
                                                                    "skipped")),
    Field("rows", "integer", "rows copied"),
    Field("bytes", "integer", "bytes streamed by COPY"),
    Field("seconds", "number", "the table's whole time"),
    Field("error", "string", "why it failed", required=False),
)
REPORT_FIELDS: Final = (
    ENVELOPE_HEAD[1], ENVELOPE_HEAD[2],
    *(f for f in EVENTS[RUN_SUMMARY].fields if f.required),
    Field("snapshot_age_seconds", "number", "as in `run_summary`: with a read replica as the "
          "source, how old the snapshot's data was", required=False),
    Field("started_at", "string", "when the invocation started (ISO 8601, UTC)"),
    Field("finished_at", "string", "when it finished (ISO 8601, UTC)"),
    Field("results", "array of objects", "one object per table, in list order (below)"),
    Field("schema_changes", "array of objects", "the tables whose source definition changed "
          "since their last successful copy, in list order, each as its `schema_changed` "
          "event's `table`, `changes` and `views`", required=False),
    Field("stale_tables", "array of objects", "the tables whose freshness column's newest "
          "value tonight is older than their `max_age` (or that have no rows), in list order, "
          "each as `table`, `column`, `newest` (ISO 8601 UTC, null without rows) and `max_age` "
          "as configured", required=False),
    Field("retryable", "boolean", "true when tables failed and every failure was transient (a "
          "lost connection, a lock, a serialization or recovery conflict): the state machine "
          "retries such a build once; false otherwise", required=False),
    Field("schema_version", "integer", "this object's layout: 2 (1, or absent: a worker from "
          "before retryable)", required=False),
)


# -------------------------------------------------------------------------- checking
def _check_fields(declared: tuple[Field, ...], given: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    known = {f.name: f for f in declared}
    for name in given:
        if name not in known:
            problems.append(f"{where}: undeclared field {name!r}")
    for f in declared:
        if f.name not in given:
            if f.required:
                problems.append(f"{where}: required field {f.name!r} is missing")
        elif (p := f.problem(given[f.name])) is not None:
            problems.append(f"{where}: {p}")
    order = [n for n in given if n in known]
    if order != [f.name for f in declared if f.name in given]:
        problems.append(f"{where}: fields out of the declared order ({', '.join(order)})")
    return problems


def event_problems(event: str, fields: Mapping[str, Any]) -> list[str]:
    """What is wrong with an event's own fields (those between the envelope's head and ts)."""
    spec = EVENTS.get(event)
    if spec is None:
        return [f"undeclared event {event!r}"]
    clash = [n for n in fields if n in ENVELOPE_NAMES]
    if clash:
        return [f"{event}: field {clash[0]!r} belongs to the envelope"]
    return _check_fields(spec.fields, fields, event)


def line_problems(record: Mapping[str, Any]) -> list[str]:
    """What is wrong with one whole JSON line as parsed (envelope included)."""
    names = list(record)
    head = [f.name for f in ENVELOPE_HEAD]
    if names[:len(head)] != head or names[-1:] != ["ts"]:
        return [f"the line does not start with {', '.join(head)} and end with ts: {names}"]
    problems = [p for f in ENVELOPE_HEAD + ENVELOPE_TAIL
                if (p := f.problem(record[f.name])) is not None]
    inner = {k: v for k, v in record.items() if k not in ENVELOPE_NAMES}
    return problems + event_problems(str(record["event"]), inner)


def report_problems(report: Mapping[str, Any]) -> list[str]:
    """What is wrong with a report file's object."""
    problems = _check_fields(REPORT_FIELDS, report, "report")
    for i, row in enumerate(report.get("results") or []):
        problems += _check_fields(REPORT_RESULT_FIELDS, row, f"report results[{i}]")
    return problems
