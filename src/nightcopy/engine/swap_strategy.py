"""--strategy swap (the default): build the table in its staging schema, then swap it in.

The load (COPY FREEZE, keys and indexes, ANALYZE) happens on the staged table while readers
go on using the old one. The swap itself runs under a SAVEPOINT with a short lock_timeout
(retried with backoff): drop the old table (after its dependent views, which are re-created)
and move the new one in with ALTER TABLE ... SET SCHEMA, keeping the old table's grants,
owner, policies and publications.
"""

from __future__ import annotations

import time

import psycopg2
import psycopg2.errors

from nightcopy.engine import target_ddl
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.grants import RelationGrants, grants_sql
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_load import TableLoad
from nightcopy.engine.table_locks import LOCK_ERRORS, lock_in_order, with_lock_retries
from nightcopy.engine.target_catalog import inspection
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


def build_and_swap(load: TableLoad, old: TargetTable | None, listed: set[str],
                   target_roles: set[str]) -> None:
    """Load into a staged table, then swap it in for `old` (None: the table is new here)."""
    build_and_swap_unit([load], [old], listed, target_roles)


def build_and_swap_unit(loads: list[TableLoad], olds: list[TargetTable | None],
                        listed: set[str], target_roles: set[str]) -> None:
    """A unit (one table, or an inheritance hierarchy, parents first): each table loaded into
    its staged table (children INHERITS their staged parents), then all swapped in at once,
    under one lock, in the one transaction: readers see the old hierarchy or the new one."""
    swaps = [_Swap(load, listed, target_roles) for load in loads]
    for swap, old in zip(swaps, olds, strict=True):
        swap.build(old)
    lead = loads[0]
    with_lock_retries(lead.cur, lambda: _swap_unit(swaps, olds), lead.settings.lock_policy,
                      lead.out.table, "take the lock for the swap", lead.out.add_lock_wait)


def _swap_unit(swaps: list[_Swap], olds: list[TargetTable | None]) -> None:
    cur = swaps[0].cur
    if len(swaps) > 1:
        # Parents before children: the order a reader of the parent locks them in, so the
        # reader queues behind the swap instead of deadlocking with it.
        for swap, old in zip(swaps, olds, strict=True):
            if old is not None:
                cur.execute(f"LOCK TABLE {swap.load.table.ref.qualified} IN ACCESS EXCLUSIVE MODE")
    currents = [swap.lock_and_look(old) for swap, old in zip(swaps, olds, strict=True)]
    _refuse_foreign_children(swaps, currents)
    _claim_shared_dependents(currents)
    pairs = list(zip(swaps, currents, strict=True))
    for swap, current in reversed(pairs):  # children before their parents
        if current is not None:
            swap.drop_old(current)
    for swap, current in pairs:
        swap.move_in(current)
    for swap, current in pairs:
        if current is not None:
            swap.restore_target_side(current)


def _refuse_foreign_children(swaps: list[_Swap], currents: list[TargetTable | None]) -> None:
    """An old target table with inheritance children the unit does not replace cannot be
    dropped (and the new one would not have them): refuse it with the fix."""
    unit = {swap.load.table.ref.qualified for swap in swaps}
    for swap, current in zip(swaps, currents, strict=True):
        if current is None or current.kind != "r":
            continue
        others = [name for name in current.leaves if name not in unit]
        if others:
            q = swap.load.table.ref.qualified
            raise TableError(
                f"cannot replace {q} on the target: it has inheritance children that "
                f"are not copied with it ({', '.join(others)}); list them too, or drop them "
                f"or their inheritance (ALTER TABLE ... NO INHERIT {q}) on the target")


def _claim_shared_dependents(currents: list[TargetTable | None]) -> None:
    """The target's view of a parent covers its children (views and foreign keys on them):
    each is dropped and re-created once, by the last table of the unit it depends on, so it
    is re-created after every table it reads is in place."""
    seen_views: set[int] = set()
    seen_fks: set[tuple[str, str]] = set()
    for current in reversed(currents):
        if current is None:
            continue
        current.views = [v for v in current.views if v.oid not in seen_views]
        seen_views.update(v.oid for v in current.views)
        current.incoming_fks = [fk for fk in current.incoming_fks if fk not in seen_fks]
        seen_fks.update(current.incoming_fks)


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
    def __init__(self, load: TableLoad, listed: set[str], target_roles: set[str]):
        self.load = load
        self.cur = load.cur
        self.listed = listed
        self.target_roles = target_roles

    def build(self, old: TargetTable | None) -> None:
        """The staged table, loaded, indexed, verified and analysed (no lock on the old one)."""
        load, d = self.load, self.load.table
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

    def lock_and_look(self, old: TargetTable | None) -> TargetTable | None:
        """Lock the old table (and what its swap touches); describe it again under the lock."""
        d, out = self.load.table, self.load.out
        current = None
        if old is not None:
            t0 = time.monotonic()
            lock_in_order(self.cur, d.ref.qualified, [c for c, _ in old.incoming_fks],
                          old.referenced_tables)
            out.add_lock_wait(time.monotonic() - t0)
            # Look again under the lock: views or grants may have changed during the load.
            current = inspection.inspect(self.cur, d.ref.schema, d.ref.name, self.listed)
            if current is not None and current.blockers:
                raise TableError(blocked_message(d.ref.qualified, current.blockers))
        return current

    def move_in(self, old: TargetTable | None) -> None:
        """The staged table moved into place, with its comments, grants and sequences."""
        cur, d, events = self.cur, self.load.table, self.load.events
        q = d.ref.qualified
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

    def drop_old(self, old: TargetTable) -> None:
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
        cur.execute(f"DROP TABLE {q}")
        for lost in old.lost:
            self.load.events.warn(f"{q}: the target's {lost} on the old table was not carried "
                                  "over by the swap", table=q)

    def restore_target_side(self, old: TargetTable) -> None:
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
