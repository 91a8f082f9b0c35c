"""Swap units (issue 14): which tables flip in one transaction, and the locks of that flip.

A unit is a set of TableDefs swapped (or truncated and loaded) in one target transaction:
`--swap-scope table` makes each table its own unit; `linked` (the default) joins the tables
that a target-side view or materialized view reads together (and a table's partitions),
so a reader never joins tonight's `rental` with last night's `inventory`; `group` makes the
whole invocation one unit.

The unit's transaction takes its locks in one global order, so that nightcopy's own workers
never wait for each other in a cycle and a reader never ends up in one it would be the victim
of (docs/swap.md):

1. transaction advisory locks on the sorted oids of the unit's closure (its tables and their
   partitions, the views and materialized views over them, what those views read, the tables
   its foreign keys tie it to): two units that share anything queue in the same order;
2. `LOCK TABLE ... IN ACCESS EXCLUSIVE MODE` on the closure's views, outermost first (locking
   a view locks what its query reads, in the order a reader's query does), then its tables;
3. all of it within one budget, shorter than the server's deadlock_timeout: a reader waiting
   behind us is released before its own deadlock check could run, so a cycle with a reader's
   transaction is always broken by our lock timeout (we roll back to the savepoint and retry
   with backoff), never by the server killing the reader;
4. every further lock the swap's DDL takes (DROP, foreign keys) with a lock_timeout of a few
   milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg2.errors
from psycopg2.extensions import connection, cursor

from nightcopy.engine.disjoint_sets import DisjointSets
from nightcopy.engine.pg_rows import fetch_all, fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import TableDef

SCOPES = ("table", "linked", "group")
# The lock_timeout of every lock taken after the unit's own (the swap's DDL): a few ms.
FURTHER_LOCK_TIMEOUT_MS = 10
# The advisory lock space of the swap order (the run lock uses hashtext('nightcopy')).
_ORDER_KEY = "pg_catalog.hashtext('nightcopy-swap-order')"


@dataclass
class SwapUnit:
    tables: list[TableDef]

    @property
    def names(self) -> list[str]:
        return [d.ref.qualified for d in self.tables]

    @property
    def size_bytes(self) -> int:
        return sum(d.ref.size_bytes for d in self.tables)


@dataclass(frozen=True)
class Locked:
    """One relation of a closure and how the unit's transaction locks it."""
    oid: int
    name: str  # qualified
    kind: str  # pg_class.relkind
    owner: str | None  # its owner, when the worker may act as it (None: it may not)

    def lock_sql(self) -> str | None:
        """The statement that takes ACCESS EXCLUSIVE on this relation alone (None: none).

        LOCK TABLE on a view also locks every relation its query reads, at once: the base
        tables would be taken before the other views, and a reader that already holds one of
        those views would wait for a table while we wait for its view. ALTER VIEW ... OWNER TO
        its own owner changes nothing in the catalog and locks the view alone; the swap needs
        that ownership anyway (it drops and re-creates the view). A view the worker does not
        own (truncate keeps views) is locked with LOCK TABLE; a materialized view it does not
        own is not locked (LOCK TABLE refuses them; its readers never read the tables)."""
        if self.kind in ("v", "m") and self.owner is not None:
            what = "VIEW" if self.kind == "v" else "MATERIALIZED VIEW"
            return f"ALTER {what} {self.name} OWNER TO {quote_ident(self.owner)}"
        if self.kind == "m":
            return None
        return f"LOCK TABLE {self.name} IN ACCESS EXCLUSIVE MODE"


@dataclass
class Closure:
    """What a unit's transaction locks: views and materialized views (outermost first), then
    tables, by oid."""
    views: list[Locked] = field(default_factory=list)
    tables: list[Locked] = field(default_factory=list)
    advisory_only: list[int] = field(default_factory=list)

    @property
    def oids(self) -> list[int]:
        return sorted({r.oid for r in self.views + self.tables} | set(self.advisory_only))

    @property
    def ordered(self) -> list[Locked]:
        return self.views + self.tables


# The listed tables' relations on the target and, per table, what is linked to it: the views
# and materialized views over it (recursively, through their rewrite rules) and the tables
# its foreign keys tie it to. Catalog reads only: no relation lock on any of them.
LINKS_SQL = """
WITH RECURSIVE listed AS (
    SELECT format('%%I.%%I', n.nspname, c.relname) AS name, c.oid AS root, c.oid
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE format('%%I.%%I', n.nspname, c.relname) = ANY(%s::text[]) AND c.relkind IN ('r', 'p')
), family AS (
    SELECT name, root, oid FROM listed
    UNION
    SELECT f.name, f.root, i.inhrelid FROM family f
      JOIN pg_catalog.pg_inherits i ON i.inhparent = f.oid
), dependents AS (
    SELECT f.name, r.ev_class AS oid, 1 AS depth
      FROM family f JOIN pg_catalog.pg_depend d ON d.refobjid = f.oid
       AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.ev_class <> f.oid
    UNION
    SELECT x.name, r.ev_class, x.depth + 1
      FROM dependents x JOIN pg_catalog.pg_depend d ON d.refobjid = x.oid
       AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.ev_class <> x.oid
     WHERE x.depth < 50
)
SELECT name, 'family', oid, 0 FROM family
UNION ALL
SELECT name, 'dependent', oid, max(depth) FROM dependents GROUP BY name, oid
UNION ALL
SELECT f.name, 'fk', k.confrelid, 0 FROM family f
  JOIN pg_catalog.pg_constraint k ON k.conrelid = f.oid AND k.contype = 'f'
UNION ALL
SELECT f.name, 'fk', k.conrelid, 0 FROM family f
  JOIN pg_catalog.pg_constraint k ON k.confrelid = f.oid AND k.contype = 'f'
"""


def plan_units(conn: connection, tables: list[TableDef], scope: str) -> list[SwapUnit]:
    """The invocation's units, largest first (read in a short transaction of its own); each
    unit's tables in the order of `tables` (a hierarchy's: parents first)."""
    # An inheritance hierarchy copied as one (table_units) is always one unit, whatever the
    # scope: its staged tables inherit from each other, so they can only flip together.
    if scope == "group":
        return [SwapUnit(list(tables))] if tables else []
    by_name = {d.ref.qualified: d for d in tables}
    if scope == "table":
        rows = []
    else:
        with conn.cursor() as cur:
            rows = fetch_all(cur, LINKS_SQL, (list(by_name),))
        conn.commit()
    # Tables linked through a shared relation (a view over both, one's foreign key to the
    # other, a partition of both) belong to one unit: union-find over the shared oids.
    sets = DisjointSets(by_name)
    owner_of: dict[int, str] = {}
    for name, kind, oid, _depth in rows:
        if kind == "fk":
            # A foreign key does not link a unit: the keys between copied tables are dropped
            # and re-added after all swaps anyway (foreign_keys), and a failed parent must not
            # keep its children from tonight's rows. Its tables are in the closure's order.
            continue
        if oid in owner_of:
            sets.join(name, owner_of[oid])
        else:
            owner_of[oid] = name
    for d in tables:
        for member in d.hierarchy:
            if member.ref.qualified in by_name:
                sets.join(member.ref.qualified, d.ref.qualified)
    units = [SwapUnit([by_name[name] for name in names])
             for names in sets.groups(d.ref.qualified for d in tables)]
    return sorted(units, key=lambda u: u.size_bytes, reverse=True)


def read_closure(cur: cursor, names: list[str]) -> Closure:
    """The unit's closure on the target, read from the catalogs without locking any of it."""
    rows = fetch_all(cur, LINKS_SQL, (names,))
    oids = {oid for _n, _k, oid, _d in rows}
    depth = {oid: d for _n, kind, oid, d in rows if kind == "dependent"}
    # What the views read beyond the unit's own tables (a dimension table, another view).
    reads = fetch_all(cur, """
        SELECT DISTINCT d.refobjid FROM pg_catalog.pg_rewrite r
          JOIN pg_catalog.pg_depend d ON d.objid = r.oid
           AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
         WHERE r.ev_class = ANY(%s::oid[]) AND d.refobjid <> r.ev_class""", (list(depth),))
    oids |= {oid for oid, in reads}
    described = fetch_all(cur, """
        SELECT c.oid, c.relkind, format('%%I.%%I', n.nspname, c.relname),
               CASE WHEN pg_catalog.pg_has_role(c.relowner, 'USAGE')
                    THEN pg_catalog.pg_get_userbyid(c.relowner) END,
               pg_catalog.pg_has_role(c.relowner, 'USAGE')
               OR pg_catalog.has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE')
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = ANY(%s::oid[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
                          (sorted(oids),))
    closure = Closure()
    for oid, kind, name, owner, lockable in described:
        if not lockable:
            # LOCK TABLE ... ACCESS EXCLUSIVE needs UPDATE, DELETE or TRUNCATE: a relation the
            # worker may not lock (a referenced lookup table, a dimension a view reads) keeps
            # its place in the advisory order only; the swap's DDL locks it briefly if at all.
            closure.advisory_only.append(oid)
            continue
        (closure.views if kind in ("v", "m") else closure.tables).append(
            Locked(oid, name, kind, owner))
    closure.views.sort(key=lambda v: (-depth.get(v.oid, 0), v.oid))
    closure.tables.sort(key=lambda t: t.oid)
    return closure


def deadlock_timeout_seconds(cur: cursor) -> float:
    return float(fetch_value(cur, "SELECT setting::float / 1000 FROM pg_catalog.pg_settings "
                             "WHERE name = 'deadlock_timeout'"))


def lock_budget(cur: cursor, lock_timeout: float) -> float:
    """How long one try may spend taking the unit's locks: --lock-timeout, but at most 0.8 of
    the server's deadlock_timeout. A reader that queues behind one of our locks started
    waiting after our first request, so its deadlock check comes after our try has ended
    (granted or rolled back): the server never picks a reader as a deadlock's victim."""
    return max(0.001, min(lock_timeout, 0.8 * deadlock_timeout_seconds(cur)))


class LockBudgetSpent(Exception):
    """The unit's locks were not all granted within one try's budget."""


# One lock request waits at most this long before nightcopy looks at who holds the relation.
_STEP_MS = 50


def lock_closure(cur: cursor, closure: Closure, budget: float) -> None:
    """Take the closure's locks in the global order within `budget` seconds, or raise
    LockBudgetSpent having released them all (the caller's savepoint).

    Each lock has a savepoint of its own. When a lock is not granted within a short step, its
    holders are looked at: a holder that waits for one of the locks we already hold (a
    reader's transaction that read one relation and now wants another) is let through by
    rolling back to the savepoint of the first lock it waits for, and the locks are taken
    again from there; a holder that only runs a query is waited for, until the budget ends."""
    deadline = time.monotonic() + budget

    def left_ms() -> int:
        return int((deadline - time.monotonic()) * 1000)

    for oid in closure.oids:
        if left_ms() < 1:
            raise LockBudgetSpent
        cur.execute(f"SET LOCAL lock_timeout = '{left_ms()}ms'")
        # oids are unsigned 32-bit, the advisory key's halves signed: shift into range.
        cur.execute(f"SELECT pg_catalog.pg_advisory_xact_lock({_ORDER_KEY}, "
                    "(%s::bigint - 2147483648)::int4)", (oid,))
    relations = [(r, sql) for r in closure.ordered if (sql := r.lock_sql()) is not None]
    position = {r.oid: i for i, (r, _sql) in enumerate(relations)}
    i = 0
    made = 0  # savepoints nightcopy_lock_0 .. _{made - 1} exist (ROLLBACK TO keeps its own)
    while i < len(relations):
        if left_ms() < 1:
            raise LockBudgetSpent
        relation, lock_sql = relations[i]
        if made <= i:
            cur.execute(f"SAVEPOINT nightcopy_lock_{i}")
            made = i + 1
        cur.execute(f"SET LOCAL lock_timeout = '{max(1, min(_STEP_MS, left_ms()))}ms'")
        try:
            cur.execute(lock_sql)
        except psycopg2.errors.LockNotAvailable:
            cur.execute(f"ROLLBACK TO SAVEPOINT nightcopy_lock_{i}")
            waited_for = [position[o] for o in _wanted_by_holders(cur, relation.oid)
                          if o in position and position[o] < i]
            if waited_for:
                # Let that transaction through: give back the locks from the first it wants.
                i = min(waited_for)
                cur.execute(f"ROLLBACK TO SAVEPOINT nightcopy_lock_{i}")
                made = i + 1
            continue
        i += 1
    cur.execute(f"SET LOCAL lock_timeout = '{FURTHER_LOCK_TIMEOUT_MS}ms'")


def _wanted_by_holders(cur: cursor, oid: int) -> list[int]:
    """The relations that the sessions holding `oid` are waiting for, and we hold."""
    return [r for r, in fetch_all(cur, """
        SELECT DISTINCT w.relation FROM pg_catalog.pg_locks h
          JOIN pg_catalog.pg_locks w ON w.pid = h.pid AND NOT w.granted
           AND w.locktype = 'relation'
         WHERE h.locktype = 'relation' AND h.relation = %s AND h.granted
           AND h.pid <> pg_catalog.pg_backend_pid()
           AND pg_catalog.pg_backend_pid() = ANY(pg_catalog.pg_blocking_pids(h.pid))""",
        (oid,))]


@dataclass(frozen=True)
class Holder:
    pid: int
    user: str
    application_name: str
    query_start: str
    mode: str
    relation: str

    @property
    def nightcopy(self) -> bool:
        return self.application_name.startswith("nightcopy:")

    def describe(self) -> str:
        who = self.application_name or "no application_name"
        return f"pid {self.pid} ({who}, user {self.user}) holds {self.mode} on {self.relation}"

    def identify(self) -> str:
        """Who a cancelled query belonged to; never its text (it may hold row data)."""
        return (f"pid {self.pid} (user {self.user}, application "
                f"{self.application_name or '-'}, query started {self.query_start})")


def holders(cur: cursor, closure: Closure) -> list[Holder]:
    """The other sessions holding locks on the closure's relations (granted ones: each
    conflicts with ACCESS EXCLUSIVE), one row per session and relation."""
    rows = fetch_all(cur, """
        SELECT DISTINCT l.pid, coalesce(a.usename::text, '?'), coalesce(a.application_name, ''),
               coalesce(a.query_start::text, '?'), l.mode, l.relation::pg_catalog.regclass::text
          FROM pg_catalog.pg_locks l
          LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
           AND l.relation = ANY(%s::oid[])
           AND l.database = (SELECT oid FROM pg_catalog.pg_database
                              WHERE datname = pg_catalog.current_database())
         ORDER BY 1, 6""", (closure.oids,))
    return [Holder(*row) for row in rows]


def describe_holders(found: list[Holder], limit: int = 4) -> str:
    if not found:
        return ""
    shown = "; ".join(h.describe() for h in found[:limit])
    more = f"; and {len(found) - limit} more" if len(found) > limit else ""
    return shown + more


def cancel_blockers(cur: cursor, found: list[Holder]) -> list[Holder]:
    """pg_cancel_backend() each blocking session that is not nightcopy's own; the ones that
    were cancelled (a role may cancel only its own sessions or, with pg_signal_backend,
    others')."""
    cancelled = []
    for pid in sorted({h.pid for h in found if not h.nightcopy}):
        # Without the privilege the call raises (42501): a savepoint keeps the transaction.
        cur.execute("SAVEPOINT nightcopy_cancel")
        try:
            done = fetch_value(cur, "SELECT pg_catalog.pg_cancel_backend(%s)", (pid,))
            cur.execute("RELEASE SAVEPOINT nightcopy_cancel")
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute("ROLLBACK TO SAVEPOINT nightcopy_cancel")
            done = False
        if done:
            cancelled.append(next(h for h in found if h.pid == pid))
    return cancelled
