"""--strategy swap (the default): build the table in its staging schema, then swap it in.

Two phases (docs/swap.md). The load (build_staged: COPY FREEZE, keys and indexes, ANALYZE)
fills the staged table while readers go on using the old one; its transaction commits, so the
tables of a unit load in parallel. The swap (swap_in) runs in the unit's transaction, after
the unit's ordered locks (swap_units): drop the old table (after its dependent views, which
are re-created) and move the new one in with ALTER TABLE ... SET SCHEMA, keeping the old
table's grants, owner, policies and publications.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors

from nightcopy.engine import matviews, target_ddl
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.grants import RelationGrants, grants_sql
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_load import TableLoad
from nightcopy.engine.table_locks import LOCK_ERRORS
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.errors import TableError


def blocked_message(table: str, blockers: list[str]) -> str:
    """Why a swap cannot replace the table, with the fix that fits the obstacle."""
    fixes = []
    if any(b.startswith("foreign key") for b in blockers):
        fixes.append("copy the referencing tables in the same group, or drop those foreign "
                     "keys on the target")
    if any(not b.startswith("foreign key") for b in blockers):
        fixes.append("drop or change those objects, or use --strategy truncate (keeps the table "
                     "and everything that depends on it"
                     + ("; it refuses triggers that run another role's functions as the worker"
                        if any(b.startswith("trigger ") for b in blockers) else "") + ")")
    return f"cannot replace {table} on the target: {'; '.join(blockers)}. {'; '.join(fixes)}"


def build_staged(load: TableLoad, old: TargetTable | None) -> None:
    """The load phase: the staged table, filled, indexed and analyzed (the caller commits)."""
    d = load.table
    if old is not None and old.blockers:
        raise TableError(blocked_message(d.ref.qualified, old.blockers))
    staged_table = target_ddl.staged(d.ref.schema, d.ref.name)
    load.create_staged()
    load.copy_rows(lambda part: staged_table if part is None
                   else target_ddl.staged(part.schema, part.name), freeze=True)
    source_names = {i.name for i in d.indexes} | {k.name for k in d.constraints}
    # Indexes only the target has are kept: rebuilt on the new table.
    target_only = [i for i in (old.indexes if old is not None else [])
                   if i.name not in source_names]
    _refuse_untrusted_indexes(d.ref.qualified, old, {i.name for i in target_only})
    load.build_indexes(target_only)
    load.finish(staged_table)


@dataclass
class UnitMatviews:
    """The materialized views over a unit's tables, rebuilt over the staged tables before the
    unit's locks (engine/matviews.prepare), and which of them are swapped in already (one
    over two of the unit's tables is replaced with the first of them)."""
    prepared: list[matviews.PreparedMatview] = field(default_factory=list)
    done: set[int] = field(default_factory=set)  # oids of the old ones replaced


def swap_in(load: TableLoad, current: TargetTable | None, listed: set[str],
            target_roles: set[str], unit_matviews: UnitMatviews | None = None,
            unit: frozenset[str] = frozenset()) -> None:
    """The swap phase, under the unit's locks: `current` is what the target has now (looked
    at again under those locks; None: the table is new here). `unit`: the qualified names of
    the unit's tables (a hierarchy's are swapped in children first)."""
    if current is not None and current.blockers:
        raise TableError(blocked_message(load.table.ref.qualified, current.blockers))
    if current is not None:
        _refuse_foreign_children(load.table.ref.qualified, current, unit)
    if current is not None:
        # The load's check, again: a target-only index may have appeared since.
        source_names = ({i.name for i in load.table.indexes}
                        | {k.name for k in load.table.constraints})
        _refuse_untrusted_indexes(load.table.ref.qualified, current,
                                  {i.name for i in current.indexes if i.name not in source_names})
    _Swap(load, listed, target_roles, unit_matviews or UnitMatviews()).swap_in(current)


def build_and_swap(load: TableLoad, old: TargetTable | None, listed: set[str],
                   target_roles: set[str]) -> None:
    """Both phases in the caller's transaction (a table new to the target under --strategy
    truncate: the unit's locks are already held)."""
    build_staged(load, old)
    swap_in(load, old, listed, target_roles)


def _refuse_foreign_children(table: str, current: TargetTable, unit: frozenset[str]) -> None:
    """An old target table with inheritance children the unit does not replace cannot be
    dropped (and the new one would not have them): refuse it with the fix. The unit's own
    children are dropped before it (children first)."""
    if current.kind != "r":
        return
    others = [name for name in current.leaves if name not in unit | {table}]
    if others:
        raise TableError(
            f"cannot replace {table} on the target: it has inheritance children that are not "
            f"copied with it ({', '.join(others)}); list them too, or drop them or their "
            f"inheritance (ALTER TABLE ... NO INHERIT {table}) on the target")


def _refuse_untrusted_indexes(table: str, old: TargetTable | None, names: set[str]) -> None:
    """A target-only index is rebuilt on the staged table, which the worker owns, and index
    builds run as the table's owner: an expression or predicate calling a function another
    role wrote would run as the worker. Rebuilding it as its original owner is not provably
    safe (that role may lack what the build needs), so the table is refused."""
    untrusted = [c for c in (old.user_code if old is not None else [])
                 if c.kind == "index" and c.name in names]
    if untrusted:
        raise TableError(
            f"cannot replace {table} on the target: its target-only "
            f"{'; '.join(c.describe() for c in untrusted)}, and rebuilding it on the new table "
            "would run that function as the worker's role (only pg_catalog and extension "
            "functions are trusted); drop or change that index on the target, or use "
            "--strategy truncate once it is gone")


class _Swap:
    def __init__(self, load: TableLoad, listed: set[str], target_roles: set[str],
                 unit_matviews: UnitMatviews):
        self.load = load
        self.cur = load.cur
        self.listed = listed
        self.target_roles = target_roles
        self.unit_matviews = unit_matviews

    def swap_in(self, old: TargetTable | None) -> None:
        cur, d, events = self.cur, self.load.table, self.load.events
        q = d.ref.qualified
        if old is not None:
            self._drop_old(old)
        cur.execute(f"ALTER TABLE {target_ddl.staged(d.ref.schema, d.ref.name)} SET SCHEMA "
                    f"{quote_ident(d.ref.schema)}")
        for p in d.partitions:  # SET SCHEMA moves a table's indexes, not its partitions
            cur.execute(f"ALTER TABLE {target_ddl.staged(p.schema, p.name)} SET SCHEMA "
                        f"{quote_ident(p.schema)}")
        for statement in target_ddl.comments_sql(d, lambda s: s, self._literal):
            cur.execute(statement)
        if old is not None:
            grants, skipped = grants_sql(q, old.grants, self.target_roles)
        else:
            source_grants = RelationGrants(
                table=d.acl, columns=[(c.name, g, p) for c in d.columns for g, p in c.acl])
            grants, skipped = grants_sql(q, source_grants, self.target_roles)
            if skipped:
                events.warn(f"{q}: source grants to roles missing on the target were "
                            f"skipped: {', '.join(skipped)}", table=q)
        for statement in grants:
            cur.execute(statement)
        for s in d.sequences:
            if s.owner_table_oid == d.ref.oid and s.owner_column:
                cur.execute(f"ALTER SEQUENCE {s.qualified} OWNED BY {q}.{quote_ident(s.owner_column)}")
            target_ddl.set_sequence_value(cur, s, s.qualified)
        if old is not None:
            self._restore_target_side(old)

    def _drop_old(self, old: TargetTable) -> None:
        cur, d = self.cur, self.load.table
        q = d.ref.qualified
        keep_sequences = {s.qualified for s in d.sequences}
        for child, conname in old.incoming_fks:
            # Re-added (NOT VALID, then validated) after all tables are in.
            cur.execute(f"ALTER TABLE {child} DROP CONSTRAINT {quote_ident(conname)}")
        for seq in old.owned_sequences:
            if seq in keep_sequences:
                cur.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
        for view in reversed(old.views):
            cur.execute(f"DROP VIEW {view.qualified}")
        unit = self.unit_matviews
        current = [m for m in old.matviews if m.oid not in unit.done]
        wanted = {m.oid for m in current}
        matviews.swap_in(cur, [p for p in unit.prepared if p.old.oid in wanted], current,
                         self.target_roles, q)
        unit.done |= wanted
        cur.execute(f"DROP TABLE {q}")
        for lost in old.lost:
            self.load.events.warn(f"{q}: the target's {lost} on the old table was not carried "
                                  "over by the swap", table=q)

    def _restore_target_side(self, old: TargetTable) -> None:
        """What the target had on and around the old table, put back on the new one."""
        cur, q = self.cur, self.load.table.ref.qualified
        for head, tail in old.carry_over:
            # Policies, RLS flags and extended statistics the target had on the old table.
            cur.execute(head if tail is None else head + q + tail)
        for publication in old.publications:
            self._try_or_warn(f"ALTER PUBLICATION {publication} ADD TABLE {q}",
                              f"{q}: could not add the new table back to publication "
                              f"{publication} (the worker's role does not own it)")
        self._restore_owner(f"TABLE {q}", old.owner)
        for view in old.views:
            options = f" WITH ({', '.join(view.options)})" if view.options else ""
            try:
                cur.execute(f"CREATE VIEW {view.qualified}{options} AS {view.definition}")
            except psycopg2.Error as exc:
                if isinstance(exc, LOCK_ERRORS):
                    raise
                raise TableError(
                    f"{q}: the target's view {view.qualified} cannot be re-created on the new "
                    f"table ({pg_message(exc)}); change or drop the view, or use --strategy "
                    "truncate") from None
            self._restore_view_owner(view.qualified, view.owner)
            for statement in grants_sql(view.qualified, view.grants, self.target_roles)[0]:
                cur.execute(statement)
            if view.comment is not None:
                cur.execute(f"COMMENT ON VIEW {view.qualified} IS {self._literal(view.comment)}")
            for column, comment in view.column_comments:
                cur.execute(f"COMMENT ON COLUMN {view.qualified}.{quote_ident(column)} "
                            f"IS {self._literal(comment)}")

    def _restore_owner(self, what: str, owner: str) -> None:
        if fetch_value(self.cur, "SELECT current_user") == owner:
            return
        self._try_or_warn(f"ALTER {what} OWNER TO {quote_ident(owner)}",
                          f"{what} is now owned by the worker's role: it may not set the owner "
                          f"back to {owner} (grant it membership in {owner})")

    def _restore_view_owner(self, view: str, owner: str) -> None:
        """A view reads its tables with its owner's privileges: one left owned by the worker,
        with its grants re-applied, would let its readers read what the worker may. So the
        table fails instead (its transaction, and the old view, are rolled back)."""
        if fetch_value(self.cur, "SELECT current_user") == owner:
            return
        try:
            self.cur.execute(f"ALTER VIEW {view} OWNER TO {quote_ident(owner)}")
        except psycopg2.errors.InsufficientPrivilege as exc:
            raise TableError(
                f"{self.load.table.ref.qualified}: the target's view {view} (owner {owner}) "
                f"cannot be given back to its owner after the swap ({pg_message(exc, detail=False)}), and "
                "left to the worker's role it would read with the worker's privileges; grant "
                f"the worker membership in {owner} and {owner} CREATE on the view's schema, "
                "drop the view, or use --strategy truncate") from None

    def _try_or_warn(self, statement: str, warning: str) -> None:
        """A step the worker's role may lack the privilege for: warn instead of failing."""
        self.cur.execute("SAVEPOINT nightcopy_optional")
        try:
            self.cur.execute(statement)
            self.cur.execute("RELEASE SAVEPOINT nightcopy_optional")
        except psycopg2.errors.InsufficientPrivilege:
            self.cur.execute("ROLLBACK TO SAVEPOINT nightcopy_optional")
            self.load.events.warn(warning, table=self.load.table.ref.qualified)

    def _literal(self, value: str) -> str:
        return self.cur.mogrify("%s", (value,)).decode()
