"""What nightcopy lets run on the target while loading (issue 12): the `trust` option, and the
up-front check of every table's expressions against it.

By default an expression evaluated while loading (CHECK, domain CHECK, generated column, index
expression or predicate, exclusion constraint, partition key) may call only built-in immutable
functions and built-in operators, or the functions of an extension (an extension is trusted by
creating it: the target's own copy of it is what runs). Anything else (a volatile built-in such
as pg_notify() or pg_sleep(), or a function in a user schema, which on the target is whatever
someone created under that name) fails the table before any data moves, unless the user
declared it trusted: `--trust app.ok,util.*` (NIGHTCOPY_TRUST, `trust` in the config file's
[options] or SSM options). A trusted SQL or PL/pgSQL function the target lacks is copied from
the source (target_catalog/functions); one that exists there is used only if nightcopy created
it or it is trusted by its own name; nightcopy never replaces another role's function.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2.extensions import connection, cursor

from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.sql_names import qualified_name, quote_ident
from nightcopy.engine.table_model import ExpressionCall, TableDef
from nightcopy.engine.tablelist import TableSpec, parse_name
from nightcopy.engine.target_catalog.domain_calls import read_domain_calls
from nightcopy.engine.target_catalog.signatures import lookup as signatures_lookup
from nightcopy.errors import ConfigError, NightcopyError

HOW_TO_TRUST = "--trust (NIGHTCOPY_TRUST, options.trust)"
_HOW_TO_TRUST = HOW_TO_TRUST


@dataclass(frozen=True)
class TrustEntry:
    # The table list's name grammar and its linear-time glob matcher: the same quoting and
    # folding rules as --tables; the name may be a glob ("*": the whole schema).
    spec: TableSpec

    def covers(self, call: ExpressionCall) -> bool:
        return self.spec.matches(call.schema, call.name)


@dataclass(frozen=True)
class Trust:
    entries: tuple[TrustEntry, ...] = ()

    def covers(self, call: ExpressionCall) -> bool:
        return any(e.covers(call) for e in self.entries)

    def covers_function(self, schema: str, name: str) -> bool:
        """Whether the user trusts the function schema.name (any overload)."""
        return any(e.spec.matches(schema, name) for e in self.entries)

    def names(self, schema: str, name: str) -> bool:
        """Trusted by its own name (`schema.function`, no glob): what lets a function that
        nightcopy did not create on the target be used (target_catalog/functions)."""
        return any(not e.spec.is_glob and e.spec.matches(schema, name) for e in self.entries)


def parse_trust(value: str | None) -> Trust:
    """`schema.function` and `schema.*` items, comma-separated (SQL identifier rules: unquoted
    names fold to lower case). The schema is always named and never a glob: trusting code is a
    deliberate, reviewable act."""
    if value is None or not value.strip():
        return Trust()
    entries: list[TrustEntry] = []
    for item in value.split(","):
        text = item.strip()
        problem = (f"--trust item {text!r} is not a function name: write schema.function or "
                   'schema.* (double quotes around names holding capitals or punctuation)')
        if not text or "." not in text:
            raise ConfigError(problem)
        try:
            spec = parse_name(text)
        except ConfigError:
            raise ConfigError(problem) from None
        if spec.schema_is_glob:
            raise ConfigError(f"--trust item {text!r} has a glob in its schema: name the schema "
                              "(schema.* trusts all of one schema)")
        entries.append(TrustEntry(spec))
    return Trust(tuple(entries))


def untrusted_reason(d: TableDef, trust: Trust) -> str | None:
    """Why the table may not be loaded (its first untrusted call, named, and the trust list that
    would allow all of them), or None."""
    refused = [c for c in d.expression_calls if c.extension is None and not trust.covers(c)]
    if not refused:
        return None
    # The operator before its function: the operator is what the definition's text shows.
    first = min(refused, key=lambda c: (c.kind != "operator", c.what, c.signature))
    more = len({c.signature for c in refused}) - 1
    also = f" (and {more} more)" if more > 0 else ""
    names = list(dict.fromkeys(trust_item(c) for c in
                               sorted(refused, key=lambda c: c is not first)))
    return (f"{first.what} calls the {first.kind} {first.signature}{also}, which is neither "
            "built-in and immutable nor an extension's: the target would run it as the target "
            f"role for every row loaded; if that is safe, trust it: {_HOW_TO_TRUST} "
            f"{','.join(names)}")


def trust_item(call: ExpressionCall) -> str:
    """The --trust item that covers the call, quoted where the grammar needs it."""
    return qualified_name(call.schema, call.name)


def refused_tables(tgt: connection, defs: dict[int, TableDef], trust: Trust) -> dict[int, str]:
    """The tables that may not be loaded, by oid, with the reason: an untrusted call, or an
    allowed one (an extension's or a trusted function) that the target lacks under the same
    signature, or that on the target is not the extension's. Reads the target, writes nothing."""
    refused: dict[int, str] = {}
    allowed: dict[int, list[ExpressionCall]] = {}
    for oid, d in defs.items():
        reason = untrusted_reason(d, trust)
        if reason is not None:
            refused[oid] = reason
        elif d.expression_calls:
            allowed[oid] = d.expression_calls
    try:
        with tgt.cursor() as cur:
            # The target's own domains, which the load evaluates as they stand there.
            for oid, reason in target_domain_refusals(
                    cur, [d for oid, d in defs.items() if oid not in refused], trust).items():
                refused[oid] = reason
        tgt.commit()
        wanted = sorted({(c.kind, c.signature) for oid, calls in allowed.items()
                         if oid not in refused for c in calls})
        found = _on_target(tgt, wanted) if wanted else {}
        installed = _extensions_on_target(tgt) if wanted else set()
    except psycopg2.Error as exc:
        tgt.rollback()
        raise NightcopyError("cannot look up on the target the functions the tables' "
                             f"expressions call: {pg_message(exc)}") from None
    for oid, calls in allowed.items():
        if oid in refused:
            continue
        for c in calls:
            target_extension = found.get((c.kind, c.signature), False)
            if target_extension is False and c.extension and c.extension not in installed:
                # The extension itself is missing: the prepare step creates it (it is then the
                # extension's own object), or fails the table naming the CREATE EXTENSION.
                continue
            if c.kind == "function" and c.extension is None:
                # A trusted function: the prepare step copies the source's when the target
                # lacks it, and uses an existing one only if nightcopy created it or it is
                # trusted by name (target_catalog/functions).
                continue
            if target_extension is False:
                fix = (f"CREATE EXTENSION {c.extension} on the target" if c.extension else
                       "create it there first (nightcopy never creates or replaces functions)")
                refused[oid] = (f"{c.what} calls the {c.kind} {c.signature}, which does not exist "
                                f"on the target: {fix}")
                break
            if (c.extension is not None and target_extension != c.extension
                    and not trust.covers(c)):
                refused[oid] = (f"{c.what} calls the {c.kind} {c.signature} of the extension "
                                f"{c.extension}, which on the target is not that extension's: "
                                f"CREATE EXTENSION {c.extension} on the target, or trust it "
                                f"with {_HOW_TO_TRUST} {trust_item(c)}")
                break
    return refused


def target_domain_refusals(cur: cursor, defs: list[TableDef], trust: Trust) -> dict[int, str]:
    """The tables (by source oid) whose columns use a domain that exists on the target with a
    CHECK calling what the trust rule does not allow, with the reason naming the domain and the
    function. The same rule as the source's expressions: built-in immutable, an extension's (on
    the target: the target's extension is what runs), or trusted. Reads the target only."""
    refused: dict[int, str] = {}
    for call in read_domain_calls(cur, defs):
        if (call.table_oid in refused or call.extension is not None
                or trust.covers_function(call.schema, call.name)):
            continue
        refused[call.table_oid] = (
            f"{call.column} uses the target's domain {call.domain}, whose constraint "
            f"{quote_ident(call.constraint)} calls the {call.kind} {call.signature}, which is "
            "neither built-in and immutable nor an extension's: the target would run it as the "
            "target role for every row loaded; drop or change that constraint on the target, "
            f"or, if that is safe, trust it: {_HOW_TO_TRUST} "
            f"{qualified_name(call.schema, call.name)}")
    return refused


def _extensions_on_target(tgt: connection) -> set[str]:
    with tgt.cursor() as cur:
        names = {r[0] for r in fetch_all(cur, "SELECT extname FROM pg_catalog.pg_extension")}
    tgt.commit()
    return names


def _on_target(tgt: connection, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """(kind, signature) -> the extension the target's object belongs to (None: to none), for
    the objects that exist on the target."""
    kinds = [k for k, _ in wanted]
    signatures = [s for _, s in wanted]
    with tgt.cursor() as cur:
        # Functions and operators looked up one by one (signatures.lookup: before PostgreSQL
        # 16 a signature naming a type the target lacks raises instead of finding nothing).
        oids = [signatures_lookup(cur, k, s) if k in ("function", "operator") else None
                for k, s in wanted]
        rows = fetch_all(cur, """
        WITH w(kind, signature, oid) AS (
            SELECT * FROM unnest(%s::text[], %s::text[], %s::oid[])),
        o(kind, signature, classid, objid) AS (
            SELECT w.kind, w.signature,
                   CASE w.kind WHEN 'function' THEN 'pg_catalog.pg_proc'::pg_catalog.regclass
                               WHEN 'operator' THEN 'pg_catalog.pg_operator'::pg_catalog.regclass
                               ELSE 'pg_catalog.pg_opclass'::pg_catalog.regclass END,
                   CASE WHEN w.kind IN ('function', 'operator') THEN w.oid
                     ELSE (SELECT oc.oid FROM pg_catalog.pg_opclass oc
                             JOIN pg_catalog.pg_namespace n ON n.oid = oc.opcnamespace
                             JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
                            WHERE format('%%I.%%I USING %%I', n.nspname, oc.opcname, am.amname)
                                  = w.signature) END
              FROM w)
        SELECT o.kind, o.signature,
               (SELECT e.extname FROM pg_catalog.pg_depend d
                  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                 WHERE d.classid = o.classid AND d.objid = o.objid AND d.deptype = 'e'
                   AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass LIMIT 1)
          FROM o WHERE o.objid IS NOT NULL""", (kinds, signatures, oids))
    tgt.commit()
    return {(r[0], r[1]): r[2] for r in rows}
