"""--strategy truncate: TRUNCATE + COPY FREEZE + index maintenance in one transaction on the
existing table. It keeps the table's identity and every dependent object, but readers wait
for the whole load. A table new to the target is created by the swap strategy instead.

The tables of one swap unit (swap_units: linked by a target view) are truncated and
loaded in one transaction, after the unit's locks in the global order, so a view over them
shows one night and two workers never wait for each other in a cycle.
"""

from __future__ import annotations

from nightcopy.engine import matviews, shrink_guard, target_ddl
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_load import TableLoad
from nightcopy.engine.table_locks import with_lock_retries
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.errors import TableError


def truncate_and_load(load: TableLoad, old: TargetTable, unit: frozenset[str] = frozenset()
                      ) -> None:
    """Truncate ONLY the table (TRUNCATE of an inheritance parent would empty its children
    too) and fill it with its own rows (COPY TO reads only the source table's own rows), in
    the unit's transaction; `unit`: the qualified names of the unit's tables."""
    cur, d = load.cur, load.table
    q = d.ref.qualified
    _check_same_shape(load, old)
    _check_same_hierarchy(load, old, unit)
    shrink_guard.check_before_truncate(load.src, cur, load.events, load.settings.shrink, d, old)

    # The unit's locks are held (swap_units.lock_closure): the children are in its closure.
    for child, conname in old.incoming_fks:
        cur.execute(f"ALTER TABLE {child} DROP CONSTRAINT {quote_ident(conname)}")
    for conname in old.outgoing_fks:
        # Its parents are in the closure too; the key comes back (as on the source, NOT VALID
        # included) with the foreign-key phase, as after a swap.
        cur.execute(f"ALTER TABLE {q} DROP CONSTRAINT {quote_ident(conname)}")
    cur.execute(f"TRUNCATE {'' if d.partkey else 'ONLY '}{q}")
    load.copy_rows(lambda part: q if part is None else part.qualified, freeze=True)
    load.finish(q)
    for s in d.sequences:
        target_ddl.set_sequence_value(cur, s, s.qualified)
    if old.matviews:
        # REFRESH waits for the readers of each materialized view (LOCK TABLE cannot take it
        # beforehand): the same bounded waits and retries as the table's lock.
        with_lock_retries(cur, lambda: matviews.refresh_after_load(
            cur, old.matviews, load.settings.trust, q), load.settings.lock_policy, load.out.table,
            "lock its materialized views for their refresh", load.out.add_lock_wait)


def _check_same_hierarchy(load: TableLoad, old: TargetTable, unit: frozenset[str]) -> None:
    """Truncate keeps the target's inheritance as it is: it must be the source's (a table of
    its own, a child copied without its parent, may stay a child on the target)."""
    d = load.table
    q = d.ref.qualified
    others = ([name for name in old.leaves if name not in unit | {q}]
              if old.kind == "r" else [])
    if others:
        raise TableError(f"{q}: on the target it has inheritance children that are not "
                         f"copied with it ({', '.join(others)}), whose rows a reader of "
                         f"{q} would still see; list them too, or drop them or their "
                         "inheritance on the target")
    if not d.hierarchy_parents and not d.hierarchy:
        return  # not copied as part of a hierarchy
    parents = [name for name, in fetch_all(load.cur, """
        SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class c ON c.oid = i.inhparent
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE i.inhrelid = %s ORDER BY i.inhseqno""", (old.oid,))]
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
            "the worker's role (only pg_catalog, extension and the worker's own functions are "
            "trusted); drop or change them on the target, make those functions part of an "
            "extension, or trust them: --trust (NIGHTCOPY_TRUST, options.trust)")
    fk_blockers = [b for b in old.blockers if b.startswith("foreign key")]
    if fk_blockers:
        raise TableError(f"cannot truncate {q} on the target: {'; '.join(fk_blockers)}; copy "
                         "the referencing table in the same group, or drop that foreign key "
                         "on the target")
