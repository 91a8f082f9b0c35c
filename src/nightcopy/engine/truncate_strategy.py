"""--strategy truncate: TRUNCATE + COPY FREEZE + index maintenance in one transaction on the
existing table. It keeps the table's identity and every dependent object, but readers wait
for the whole load. A table new to the target is created by the swap strategy instead.
"""

from __future__ import annotations

import time
from functools import partial

from nightcopy.engine import target_ddl
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_load import TableLoad
from nightcopy.engine.table_locks import lock_in_order, with_lock_retries
from nightcopy.engine.table_model import PartitionDef
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.errors import TableError


def truncate_and_load(load: TableLoad, old: TargetTable) -> None:
    truncate_and_load_unit([load], [old])


def truncate_and_load_unit(loads: list[TableLoad], olds: list[TargetTable]) -> None:
    """A unit (one table, or an inheritance hierarchy, parents first) loaded in place: each
    table truncated ONLY (TRUNCATE of a parent would empty its children too) and filled with
    its own rows (COPY reads the source's ONLY rows), all in the one transaction."""
    lead = loads[0]
    cur, out = lead.cur, lead.out
    for load, old in zip(loads, olds, strict=True):
        _check_same_shape(load, old)
    _check_same_hierarchy(loads, olds)

    def lock() -> None:
        t0 = time.monotonic()
        # Parents before children (the order a reader of the parent locks them in); then, in
        # the global order, each table and its referencing tables. TRUNCATE keeps the table
        # and its own foreign keys: the tables they reference stay unlocked.
        if len(loads) > 1:
            for load in loads:
                cur.execute(f"LOCK TABLE {load.table.ref.qualified} IN ACCESS EXCLUSIVE MODE")
        incoming = sorted({fk for old in olds for fk in old.incoming_fks})
        lock_in_order(cur, lead.table.ref.qualified,
                      [load.table.ref.qualified for load in loads[1:]]
                      + [c for c, _ in incoming], [])
        out.add_lock_wait(time.monotonic() - t0)
        for child, conname in incoming:
            cur.execute(f"ALTER TABLE {child} DROP CONSTRAINT {quote_ident(conname)}")

    with_lock_retries(cur, lock, lead.settings.lock_policy, out.table,
                      "lock the table for the truncate", out.add_lock_wait)
    for load in loads:
        d = load.table
        q = d.ref.qualified
        cur.execute(f"TRUNCATE {'' if d.partkey else 'ONLY '}{q}")
        load.copy_rows(partial(_in_place, q), freeze=True)
        load.finish(q)
        for s in d.sequences:
            target_ddl.set_sequence_value(cur, s, s.qualified)


def _in_place(table: str, part: PartitionDef | None) -> str:
    return table if part is None else part.qualified


def _check_same_hierarchy(loads: list[TableLoad], olds: list[TargetTable]) -> None:
    """Truncate keeps the target's inheritance as it is: it must be the source's (a table of
    its own, a child copied without its parent, may stay a child on the target)."""
    unit = {load.table.ref.qualified for load in loads}
    for load, old in zip(loads, olds, strict=True):
        d = load.table
        q = d.ref.qualified
        others = [name for name in old.leaves if name not in unit] if old.kind == "r" else []
        if others:
            raise TableError(f"{q}: on the target it has inheritance children that are not "
                             f"copied with it ({', '.join(others)}), whose rows a reader of "
                             f"{q} would still see; list them too, or drop them or their "
                             "inheritance on the target")
        if len(loads) == 1:
            continue
        cur = load.cur
        cur.execute("""SELECT format('%%I.%%I', n.nspname, c.relname)
                         FROM pg_catalog.pg_inherits i
                         JOIN pg_catalog.pg_class c ON c.oid = i.inhparent
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE i.inhrelid = %s ORDER BY i.inhseqno""", (old.oid,))
        parents = [r[0] for r in cur.fetchall()]
        if parents != [p.ref.qualified for p in d.hierarchy_parents]:
            raise TableError(f"{q}: on the target it inherits from "
                             f"{', '.join(parents) or 'no table'}, on the source from "
                             f"{', '.join(d.inherits_from) or 'no table'}, which --strategy "
                             "truncate cannot fix; use --strategy swap")


def _check_same_shape(load: TableLoad, old: TargetTable) -> None:
    """Truncate loads into the table as it stands: refuse what only a swap can fix."""
    d = load.table
    q = d.ref.qualified
    wanted = [(c.name, c.type_sql) for c in d.copy_columns]
    # COPY names its columns: order matters only for a table of its own (a child created
    # INHERITS gets its parents' columns first, which may not be the source's order).
    if (sorted(old.columns) != sorted(wanted)) if d.hierarchy_parents else old.columns != wanted:
        raise TableError(f"{q}: the target table's columns differ from the source's, which "
                         "--strategy truncate cannot fix; use --strategy swap")
    if (old.kind == "p") != bool(d.partkey):
        raise TableError(f"{q}: the table is partitioned on one side only; use --strategy "
                         "swap")
    if d.partkey and sorted(p.qualified for p in d.leaves) != old.leaves:
        raise TableError(f"{q}: the target's partitions differ from the source's; use "
                         "--strategy swap")
    if old.user_code:
        # Loading in place would fire these triggers and evaluate these expressions as the
        # worker's role for every row, with its privileges (not their authors'). They cannot
        # be switched off for the load: DISABLE TRIGGER needs the table's ownership and
        # session_replication_role a superuser, and expressions always run. So: refuse.
        raise TableError(
            f"cannot load {q} with --strategy truncate: the target table has "
            f"{'; '.join(c.describe() for c in old.user_code)}, which the load would run as "
            "the worker's role (only pg_catalog and extension functions are trusted); drop or "
            "change them on the target, or make those functions part of an extension")
    fk_blockers = [b for b in old.blockers if b.startswith("foreign key")]
    if fk_blockers:
        raise TableError(f"cannot truncate {q} on the target: {'; '.join(fk_blockers)}; copy "
                         "the referencing table in the same group, or drop that foreign key "
                         "on the target")
