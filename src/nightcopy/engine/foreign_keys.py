"""Foreign keys between the tables of an invocation, added after all tables are in.

NOT VALID first, then VALIDATE, so readers never wait on the validation scan; a key NOT VALID
on the source stays NOT VALID (pg_get_constraintdef() says so, and it is never validated). Runs
for every pair on every invocation, also when all tables were skipped as already copied: a run
killed during this step finds missing or unvalidated keys and finishes them.
"""

from __future__ import annotations

import psycopg2
from psycopg2.extensions import connection

from nightcopy.engine.events import EventWriter
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_locks import LockRetryPolicy, run_with_lock_retries
from nightcopy.engine.table_model import Constraint, TableDef


def add_foreign_keys(tgt: connection, defs: dict[int, TableDef], policy: LockRetryPolicy,
                     events: EventWriter, not_copied: frozenset[int] | set[int] = frozenset()
                     ) -> None:
    """The keys between the invocation's tables. `not_copied`: the oids of the tables that
    failed tonight; a key from or into one that is not on the target (its preparation or its
    first copy failed) is skipped, all of that table's in one warning, instead of one
    "relation does not exist" per key. One whose tables are both there (a failed swap keeps
    last night's table) is added as on every night."""
    skipped: dict[int, list[str]] = {}
    for d in defs.values():
        for k in d.constraints:
            if k.kind != "f":
                continue
            if k.ref_table_oid not in defs:
                events.warn(f"{d.ref.qualified}: foreign key {k.name} references a table "
                            "outside this copy and was skipped", d.ref.qualified)
                continue
            left_out = defs[k.ref_table_oid].keys_into_left_out.get((d.ref.oid, k.name))
            if left_out is not None:
                events.warn(f"{d.ref.qualified}: foreign key {k.name} {left_out}: not created "
                            "on the target", d.ref.qualified)
                continue
            missing = [oid for oid in (d.ref.oid, k.ref_table_oid)
                       if oid in not_copied and not _on_target(tgt, defs[oid].ref.qualified)]
            if missing:
                skipped.setdefault(missing[0], []).append(f"{d.ref.qualified}.{k.name}")
                continue
            _add_foreign_key(tgt, d, k, defs[k.ref_table_oid].ref.kind == "p", policy, events)
    for oid, keys in skipped.items():
        q = defs[oid].ref.qualified
        events.warn(f"{q} was not copied tonight and is not on the target: its foreign keys "
                    f"were not added ({', '.join(sorted(keys))}); the next copy of it adds them", q)


def _on_target(tgt: connection, table: str) -> bool:
    with tgt.cursor() as cur:
        found = fetch_value(cur, "SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (table,))
    tgt.commit()
    return bool(found)


def _add_foreign_key(tgt: connection, d: TableDef, k: Constraint, into_partitioned: bool,
                     policy: LockRetryPolicy, events: EventWriter) -> None:
    child = d.ref.qualified
    name = quote_ident(k.name)
    validate = k.validated
    with tgt.cursor() as cur:
        try:
            cur.execute("SELECT convalidated FROM pg_catalog.pg_constraint WHERE "
                        "conname = %s AND conrelid = pg_catalog.to_regclass(%s)",
                        (k.name, child))
            row = cur.fetchone()
            tgt.commit()
            if row is None:
                not_valid = " NOT VALID" if k.validated else ""
                # Before PostgreSQL 18 partitioned referencing tables refuse NOT VALID, and
                # VALIDATE of a key into a partitioned table leaves its per-partition
                # constraint rows NOT VALID: there, a valid key is added valid at once.
                if (d.partkey or into_partitioned) and tgt.server_version < 180000:
                    not_valid, validate = "", False
                run_with_lock_retries(tgt, f"ALTER TABLE {child} ADD CONSTRAINT {name} "
                                      f"{k.definition}{not_valid}", policy)
            elif row[0]:
                return  # present and valid
        except psycopg2.Error as exc:
            tgt.rollback()
            events.warn(f"{child}: could not add foreign key {k.name}: {pg_message(exc)}",
                        child)
            return
        if not validate:
            return
        try:
            # SHARE UPDATE EXCLUSIVE: readers and writers go on during the scan.
            cur.execute(f"ALTER TABLE {child} VALIDATE CONSTRAINT {name}")
            tgt.commit()
        except psycopg2.Error as exc:
            tgt.rollback()
            events.warn(f"{child}: foreign key {k.name} left NOT VALID: {pg_message(exc)}",
                        child)
