"""Materialized views on the target over copied tables: rebuilt over the new rows by the swap,
refreshed after the load by truncate.

The swap never leaves a reader an unpopulated or stale-while-new materialized view:

- `prepare()` (before the swap's locks, readers still use the old one): re-create it WITH NO
  DATA in a staging schema from the catalog, never by editing its definition text. Its query
  is deparsed (pg_get_viewdef) with search_path set to the schemas of the staged relations it
  reads, so their names come out unqualified, then created with the staging schemas first on
  search_path, so those names resolve to the staged copies and everything else to what it was.
  pg_depend then proves it: the new one must depend on exactly the staged copies of the
  copied relations and on the very objects the old one did otherwise (columns compared by
  name), with the same columns; anything else fails the table naming it. It is then given to
  its owner and populated as its owner (SET ROLE: its query must not run with the worker's
  privileges), and its indexes are built there under their own names.
- `swap_in()` (in the swap transaction, under its locks): drop the old one and move the new
  one into place (ALTER MATERIALIZED VIEW ... SET SCHEMA), with the grants and comments (its
  own, its columns', its indexes') read again under the lock. Chains (one over another) are
  handled in dependency order; plain views over them are re-created by the swap as usual.

Populating as the owner needs the worker to be able to SET ROLE to it; otherwise the table
fails naming the materialized view and the GRANT that fixes it. One the worker owns itself is
refreshed as the worker only when its query calls nothing the trust rule of engine/trust.py
refuses (built-in immutable functions, built-in operators and extensions' functions, or what
--trust names). For the build the owner is granted, inside the transaction and revoked before
`prepare()` returns, CREATE and USAGE on that staging schema and the SELECT it has on the
originals on their staged copies: the grants never outlive the step that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import psycopg2
import psycopg2.errors
from psycopg2.extensions import cursor

from nightcopy.engine import target_ddl
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.grants import grants_sql
from nightcopy.engine.pg_rows import fetch_all, fetch_value
from nightcopy.engine.sql_names import qualified_name, quote_ident
from nightcopy.engine.table_locks import LOCK_ERRORS
from nightcopy.engine.table_model import ExpressionCall
from nightcopy.engine.target_catalog.matviews import MatviewDef, query_calls
from nightcopy.engine.trust import Trust, trust_item
from nightcopy.errors import TableError


@dataclass
class PreparedMatview:
    old: MatviewDef
    staged: str  # the new one, built and populated in a staging schema
    schema: str  # that staging schema
    oid: int


def in_build_order(matviews: list[MatviewDef]) -> list[MatviewDef]:
    """Each once (a unit of several tables may list one per table it reads), readers of a
    materialized view after it."""
    deepest: dict[int, MatviewDef] = {}
    for m in matviews:
        if m.oid not in deepest or m.depth > deepest[m.oid].depth:
            deepest[m.oid] = m
    return sorted(deepest.values(), key=lambda m: (m.depth, m.oid))


@dataclass(frozen=True)
class _Staged:
    oid: int  # the staged copy's oid
    qualified: str
    schema: str  # the staged copy's schema
    original_schema: str


def prepare(cur: cursor, matviews: list[MatviewDef], staged: dict[str, str], trust: Trust,
            table: str) -> list[PreparedMatview]:
    """Build, populate and index the new materialized views over the staged relations
    (original qualified name -> staged qualified name), in dependency order. `table` names
    what fails when one cannot be rebuilt."""
    if not matviews:
        return []
    worker = fetch_value(cur, "SELECT current_user")
    copies = _staged_oids(cur, staged)
    prepared: list[PreparedMatview] = []
    for mv in in_build_order(matviews):
        new = _Rebuild(cur, mv, copies, trust, table, worker).run()
        prepared.append(new)
        # A materialized view over this one reads the new one (a chain).
        copies[mv.oid] = _Staged(new.oid, new.staged, new.schema, mv.schema)
    return prepared


def _run_or_refuse(cur: cursor, statement: str, what: str, fix: str) -> None:
    """A step of replacing a materialized view that the worker's role may lack the privilege
    for: the table fails with one line saying what could not be done and the fixes."""
    try:
        cur.execute(statement)
    except psycopg2.errors.InsufficientPrivilege as exc:
        raise TableError(f"{what} ({pg_message(exc, detail=False)}); {fix}, drop the "
                         "materialized view, or use --strategy truncate") from None


def swap_in(cur: cursor, prepared: list[PreparedMatview], current: list[MatviewDef],
            target_roles: set[str], table: str) -> None:
    """Under the swap's locks, once the plain views over them are dropped: replace the old
    materialized views by the new ones. `current` is what the target has now (read under the
    lock), whose grants and comments are the ones kept."""
    now = {m.oid: m for m in in_build_order(current)}
    built = {p.old.oid for p in prepared}
    for found in now.values():
        if found.oid not in built:
            raise TableError(f"{table}: the materialized view {found.qualified} was created on the "
                             "target during the copy, after the new ones were built; rerun "
                             "the copy")
    for p in reversed(prepared):  # readers of a materialized view before it
        m = now.get(p.old.oid)
        if m is not None and (m.qualified, m.owner) != (p.old.qualified, p.old.owner):
            raise TableError(f"{table}: the materialized view {p.old.qualified} was renamed or "
                             "given to another owner during the copy; rerun the copy")
        _run_or_refuse(cur, f"DROP MATERIALIZED VIEW "
                       f"{p.old.qualified if m is not None else p.staged}",
                       f"{table}: the target's materialized view {p.old.qualified} cannot be "
                       "replaced by the rebuilt one",
                       f"grant the worker's role membership in {p.old.owner} with INHERIT")
    for p in prepared:
        m = now.get(p.old.oid)
        if m is None:
            continue  # dropped on the target during the copy: so is its rebuilt copy
        _run_or_refuse(cur, f"ALTER MATERIALIZED VIEW {p.staged} SET SCHEMA "
                       f"{quote_ident(m.schema)}",
                       f"{table}: the rebuilt materialized view {m.qualified} cannot be moved "
                       "into place",
                       f"grant the worker's role CREATE on schema {quote_ident(m.schema)}")
        for statement in grants_sql(m.qualified, m.grants, target_roles)[0]:
            cur.execute(statement)
        # Literals inlined, no parameters: a name may hold a '%'.
        if m.comment is not None:
            cur.execute(f"COMMENT ON MATERIALIZED VIEW {m.qualified} IS {_literal(cur, m.comment)}")
        for column, comment in m.column_comments:
            cur.execute(f"COMMENT ON COLUMN {m.qualified}.{quote_ident(column)} IS "
                        f"{_literal(cur, comment)}")
        built_indexes = {i.name for i in p.old.indexes}
        for index in m.indexes:
            if index.comment is not None and index.name in built_indexes:
                cur.execute(f"COMMENT ON INDEX {qualified_name(m.schema, index.name)} IS "
                            f"{_literal(cur, index.comment)}")


def _literal(cur: cursor, value: str) -> str:
    return cur.mogrify("%s", (value,)).decode()


def refresh_after_load(cur: cursor, matviews: list[MatviewDef], trust: Trust,
                       table: str) -> None:
    """Truncate: REFRESH each materialized view over the table, as its owner, in dependency
    order, in the load's transaction (readers already wait for it: CONCURRENTLY would gain
    nothing). One never populated on the target is left so."""
    if not matviews:
        return
    worker = fetch_value(cur, "SELECT current_user")
    for mv in in_build_order(matviews):
        if not mv.populated:
            continue
        _check_owner(cur, mv, worker, trust, table)
        try:
            with _as_owner(cur, mv.owner, worker):
                cur.execute(f"REFRESH MATERIALIZED VIEW {mv.qualified}")
        except psycopg2.Error as exc:
            if isinstance(exc, LOCK_ERRORS):
                raise
            raise TableError(f"{table}: the target's materialized view {mv.qualified} cannot "
                             f"be refreshed after the load ({pg_message(exc)}); change or drop "
                             "it") from None


class _as_owner:
    """SET ROLE to the owner for the block (nothing when the worker is the owner)."""

    def __init__(self, cur: cursor, owner: str, worker: str):
        self.cur, self.owner, self.worker = cur, owner, worker

    def __enter__(self) -> None:
        if self.owner != self.worker:
            self.cur.execute(f"SET ROLE {quote_ident(self.owner)}")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if self.owner != self.worker and kind is None:
            self.cur.execute("RESET ROLE")
        # On an error the transaction is rolled back, and with it the SET ROLE.


def _check_owner(cur: cursor, mv: MatviewDef, worker: str, trust: Trust, table: str) -> None:
    """The worker must be able to act as the owner; or be the owner, and the query call only
    what the trust rule allows (it would run as the worker)."""
    if mv.owner == worker:
        _refuse_untrusted_calls(cur, mv, trust, table)
        return
    cur.execute("SAVEPOINT nightcopy_matview_owner")
    try:
        cur.execute(f"SET ROLE {quote_ident(mv.owner)}")
        cur.execute("RESET ROLE")
        cur.execute("RELEASE SAVEPOINT nightcopy_matview_owner")
    except psycopg2.errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT nightcopy_matview_owner")
        raise TableError(
            f"{table}: the target's materialized view {mv.qualified} (owner {mv.owner}) must "
            "be populated over the new rows as its owner, and the worker's role "
            f"{worker} may not act as {mv.owner}; GRANT {quote_ident(mv.owner)} TO "
            f"{quote_ident(worker)} on the target, or drop the materialized view") from None


def _refuse_untrusted_calls(cur: cursor, mv: MatviewDef, trust: Trust, table: str) -> None:
    what = f"the materialized view {mv.qualified}"
    calls = [ExpressionCall(what, kind, signature, schema, name, extension)
             for kind, signature, schema, name, extension in query_calls(cur, mv.oid)]
    refused = [c for c in calls if c.extension is None and not trust.covers(c)]
    if not refused:
        return
    first = refused[0]
    items = ",".join(dict.fromkeys(trust_item(c) for c in refused))
    raise TableError(
        f"{table}: the target's materialized view {mv.qualified} is owned by the worker's "
        f"role, so populating it runs its query as the worker, and it calls the {first.kind} "
        f"{first.signature}, which is neither built-in and immutable nor an extension's; if "
        f"that is safe, trust it: --trust (NIGHTCOPY_TRUST, options.trust) {items}; or give "
        "the materialized view to the role that should run its query")


def _staged_oids(cur: cursor, staged: dict[str, str]) -> dict[int, _Staged]:
    originals = list(staged)
    rows = fetch_all(cur, """
        SELECT o.oid, s.oid, x.stg, sn.nspname, onsp.nspname
          FROM unnest(%s::text[], %s::text[]) AS x(orig, stg)
          JOIN pg_catalog.pg_class o ON o.oid = pg_catalog.to_regclass(x.orig)
          JOIN pg_catalog.pg_namespace onsp ON onsp.oid = o.relnamespace
          JOIN pg_catalog.pg_class s ON s.oid = pg_catalog.to_regclass(x.stg)
          JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace""",
                     (originals, [staged[o] for o in originals]))
    return {orig: _Staged(new, stg, schema, orig_schema)
            for orig, new, stg, schema, orig_schema in rows}


class _Rebuild:
    """One materialized view rebuilt over the staged relations."""

    def __init__(self, cur: cursor, mv: MatviewDef, copies: dict[int, _Staged], trust: Trust,
                 table: str, worker: str):
        self.cur, self.mv, self.copies = cur, mv, copies
        self.trust, self.table, self.worker = trust, table, worker

    def run(self) -> PreparedMatview:
        mv = self.mv
        _check_owner(self.cur, mv, self.worker, self.trust, self.table)
        reads = sorted((self.copies[r] for r in mv.reads if r in self.copies),
                       key=lambda s: (s.schema, s.qualified))
        if not reads:
            self._fail("it reads none of the staged tables")
        originals = list(dict.fromkeys(s.original_schema for s in reads))
        stages = list(dict.fromkeys(s.schema for s in reads))
        home = stages[0]  # a staging schema of this run: the worker's, checked (target_ddl)
        staged = qualified_name(home, mv.name)
        self._search_path(originals)
        definition = fetch_value(self.cur, "SELECT pg_catalog.pg_get_viewdef(%s)", (mv.oid,))
        self._search_path(stages + originals)
        options = f" WITH ({', '.join(mv.options)})" if mv.options else ""
        try:
            # The statement's own terminator goes; the query text is used as deparsed.
            self.cur.execute(f"CREATE MATERIALIZED VIEW {staged}{options} AS "
                             f"{definition.rstrip().removesuffix(';')} WITH NO DATA")
        except psycopg2.Error as exc:
            if isinstance(exc, LOCK_ERRORS):
                raise
            self._fail(f"re-creating it next to the staged tables failed: {pg_message(exc)}")
        self._search_path([])  # back to the session's empty path (connection.py)
        oid = fetch_value(self.cur, "SELECT pg_catalog.to_regclass(%s)::oid", (staged,))
        self._verify(oid)
        self._populate(staged, home, reads)
        return PreparedMatview(mv, staged, home, oid)

    def _search_path(self, schemas: list[str]) -> None:
        self.cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)",
                         (", ".join(quote_ident(s) for s in schemas),))

    def _fail(self, why: str) -> NoReturn:
        raise TableError(f"{self.table}: the target's materialized view {self.mv.qualified} "
                         f"cannot be rebuilt over the new rows ({why}); change or drop it, or "
                         "use --strategy truncate")

    def _verify(self, oid: int) -> None:
        """The new one reads the staged copies where the old one read the originals, and the
        very same objects otherwise, with the same columns."""
        columns_sql = """SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
                                a.attcollation
                           FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum"""
        if fetch_all(self.cur, columns_sql, (oid,)) != fetch_all(self.cur, columns_sql,
                                                                   (self.mv.oid,)):
            self._fail("re-created next to the staged tables its columns differ")
        mapped = {k: v.oid for k, v in self.copies.items()}
        old = self._dependencies(self.mv.oid, mapped)
        new = self._dependencies(oid, {})
        if old != new:
            unexpected = sorted(new - old) or sorted(old - new)
            what = fetch_value(self.cur, "SELECT pg_catalog.pg_describe_object(%s, %s, 0)",
                               unexpected[0][:2])
            self._fail(f"re-created next to the staged tables it would depend on other objects "
                       f"than the original, first {what}: a name its query uses resolves "
                       "differently there")

    def _dependencies(self, oid: int, mapped: dict[int, int]) -> set[tuple[int, int, str]]:
        """What the query of the materialized view depends on: (class, object, column name or
        sub-id), the copied relations replaced by their staged copies."""
        rows = fetch_all(self.cur, """
            SELECT d.refclassid, d.refobjid,
                   CASE WHEN d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                             AND d.refobjsubid > 0
                        THEN (SELECT a.attname::text FROM pg_catalog.pg_attribute a
                               WHERE a.attrelid = d.refobjid AND a.attnum = d.refobjsubid)
                        ELSE d.refobjsubid::text END
              FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               AND r.ev_class = %s AND d.refobjid <> %s""", (oid, oid))
        return {(int(refclass), mapped.get(int(refobj), int(refobj)), str(sub))
                for refclass, refobj, sub in rows}

    def _populate(self, staged: str, home: str, reads: list[_Staged]) -> None:
        """Give it to its owner, then fill it and build its indexes as the owner."""
        mv, cur = self.mv, self.cur
        owner = quote_ident(mv.owner)
        revokes: list[str] = []
        if mv.owner != self.worker:
            for privilege in ("USAGE", "CREATE"):
                if not fetch_value(cur, "SELECT pg_catalog.has_schema_privilege(%s, %s, %s)",
                                   (mv.owner, home, privilege)):
                    cur.execute(f"GRANT {privilege} ON SCHEMA {quote_ident(home)} TO {owner}")
                    revokes.append(f"REVOKE {privilege} ON SCHEMA {quote_ident(home)} "
                                   f"FROM {owner}")
            originals = {s.oid: o for o, s in self.copies.items()}
            for s in reads:
                revokes += self._lend_select(s, originals[s.oid])
            cur.execute(f"ALTER MATERIALIZED VIEW {staged} OWNER TO {owner}")
        try:
            with _as_owner(cur, mv.owner, self.worker):
                if mv.populated:
                    cur.execute(f"REFRESH MATERIALIZED VIEW {staged}")
                for index in mv.indexes:
                    cur.execute(target_ddl.index_sql(index, staged))
        except psycopg2.Error as exc:
            if isinstance(exc, LOCK_ERRORS):
                raise
            self._fail(f"populating it as its owner {mv.owner} failed: {pg_message(exc)}")
        for statement in revokes:
            cur.execute(statement)

    def _lend_select(self, copy: _Staged, original: int) -> list[str]:
        """The owner's SELECT on the original (through ownership, grants, roles or PUBLIC),
        granted on the staged copy for the refresh; returns the REVOKEs that take it back."""
        cur, owner = self.cur, self.mv.owner
        if fetch_value(cur, "SELECT pg_catalog.has_table_privilege(%s, %s::oid, 'SELECT')",
                       (owner, copy.oid)):
            return []
        if fetch_value(cur, "SELECT pg_catalog.has_table_privilege(%s, %s::oid, 'SELECT')",
                       (owner, original)):
            columns = ""
        else:
            names = [n for n, in fetch_all(cur, """
                SELECT a.attname FROM pg_catalog.pg_attribute a
                  JOIN pg_catalog.pg_attribute s ON s.attrelid = %s AND s.attname = a.attname
                                                AND s.attnum > 0 AND NOT s.attisdropped
                 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
                   AND pg_catalog.has_column_privilege(%s, a.attrelid, a.attnum, 'SELECT')
                 ORDER BY a.attnum""", (copy.oid, original, owner))]
            if not names:
                return []  # it may not read the original either: the refresh says so
            columns = f" ({', '.join(quote_ident(n) for n in names)})"
        cur.execute(f"GRANT SELECT{columns} ON {copy.qualified} TO {quote_ident(owner)}")
        return [f"REVOKE SELECT{columns} ON {copy.qualified} FROM {quote_ident(owner)}"]
