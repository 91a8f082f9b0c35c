"""How one table is copied: one target transaction per table.

The transaction takes the table's advisory run lock, looks at what the target has under the
table's name, loads the table with the chosen strategy (swap_strategy, truncate_strategy) and
writes the ledger row before it commits, so a table is recorded as copied exactly when it is.
"""

from __future__ import annotations

import contextlib
import time

import psycopg2
from psycopg2.extensions import connection, cursor

from nightcopy.engine import swap_strategy, truncate_strategy
from nightcopy.engine.connection import Connection, apply_settings
from nightcopy.engine.events import EventWriter
from nightcopy.engine.ledger import RECORD_TABLE_SQL
from nightcopy.engine.table_job import CopySettings, TableOutcome
from nightcopy.engine.table_load import TableLoad
from nightcopy.engine.table_locks import lock_table_for_run
from nightcopy.engine.table_model import KIND_NAMES, TableDef
from nightcopy.engine.target_catalog import inspection
from nightcopy.errors import TableError


class TableCopier:
    def __init__(self, settings: CopySettings, events: EventWriter, listed: set[str],
                 target_roles: set[str]):
        self.settings = settings
        self.events = events
        self.listed = listed
        self.target_roles = target_roles

    def copy(self, src: Connection, tgt: Connection, d: TableDef) -> list[TableOutcome]:
        """Copy the unit `d` leads (the table, or its inheritance hierarchy) in one
        transaction; each table's outcome, in the unit's order."""
        unit = d.unit
        outs = [TableOutcome(m.ref.qualified, "copied", format="binary" if m.binary else "text")
                for m in unit]
        started = time.monotonic()
        cur = tgt.cursor()
        try:
            apply_settings(cur, tgt.nightcopy_settings, local=True)
            olds = []
            for m in unit:
                lock_table_for_run(cur, m.ref.qualified)
                old = inspection.inspect(cur, m.ref.schema, m.ref.name, self.listed)
                if old is not None and old.kind not in ("r", "p"):
                    raise TableError(
                        f"{m.ref.qualified} on the target is "
                        f"{KIND_NAMES.get(old.kind, 'not a table')}, not a table; drop or rename "
                        "it there, or remove the table from the list")
                olds.append(old)
            loads = [TableLoad(src, cur, m, out, self.settings, self.events)
                     for m, out in zip(unit, outs, strict=True)]
            existing = [old for old in olds if old is not None]
            if self.settings.strategy == "truncate" and len(existing) == len(olds):
                truncate_strategy.truncate_and_load_unit(loads, existing)
            else:
                # A unit with a table new to the target is created whole by the swap.
                swap_strategy.build_and_swap_unit(loads, olds, self.listed, self.target_roles)
            for out in outs:
                # A hierarchy's tables share one transaction: each reports its elapsed time.
                out.seconds = time.monotonic() - started
                self._record(cur, out)
            tgt.commit()
        except BaseException:
            for out in outs:
                out.seconds = time.monotonic() - started
            # psycopg2.Error: the connection is gone and the server rolls back on its own.
            with contextlib.suppress(psycopg2.Error):
                tgt.rollback()
            raise
        finally:
            if not cur.closed and not tgt.closed:
                cur.close()
        return outs

    def _record(self, cur: cursor, out: TableOutcome) -> None:
        cur.execute(RECORD_TABLE_SQL, {
            "run_id": self.settings.run_id, "table": out.table,
            "group": self.settings.group or "", "status": out.status, "rows": out.rows,
            "bytes": out.bytes, "seconds": out.seconds, "copy_seconds": out.copy_seconds,
            "index_seconds": out.index_seconds, "lock_wait_seconds": out.lock_wait_seconds,
            "error": out.error, "started_at": out.started_at})

    def record_failure(self, tgt: connection, out: TableOutcome) -> None:
        with tgt.cursor() as cur:
            self._record(cur, out)
        tgt.commit()
