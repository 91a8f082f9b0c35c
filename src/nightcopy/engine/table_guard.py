"""What a table's transaction checks on the target before it loads, and records after (issue 12).

Before: a target table that a glob in the list matches, but that nightcopy never created,
replaced or adopted (the ledger's managed_tables, by oid), is not replaced: a new source table
must not destroy reporting data that happens to carry its name. Naming the table explicitly in
the list, or the adopt option, replaces it. The same rule holds for --strategy truncate, which
empties the table. And the target-side code a load would run (engine/target_catalog/user_code)
loses the functions the user trusts (--trust), so they do not refuse the table. And a column
whose domain exists on the target with a CHECK calling untrusted code fails the table
(engine/trust.target_domain_refusals).

After: the table now under the name is recorded as nightcopy's, in the same transaction as the
swap or the load, so the record is exact (the swap's new oid in, the dropped one out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg2.extensions import connection, cursor

from nightcopy.engine import ledger
from nightcopy.engine.table_model import TableDef, TableRef
from nightcopy.engine.tablelist import TableSpec
from nightcopy.engine.target_catalog import user_code
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.engine.trust import Trust, target_domain_refusals
from nightcopy.errors import TableError

_HOW_TO_ADOPT = "--adopt (NIGHTCOPY_ADOPT, options.adopt)"


def named(specs: Sequence[TableSpec], ref: TableRef) -> bool:
    """Whether the list names the table itself (not only through a glob)."""
    return any(not s.is_glob and s.schema == ref.schema and s.name == ref.name for s in specs)


def unmanaged_glob_match(specs: Sequence[TableSpec], ref: TableRef) -> str:
    """Why a table the list matches only through a glob, and that nightcopy did not create, is
    not replaced: one line with the fixes (also what `nightcopy validate` prints)."""
    globs = ", ".join(repr(s.text) for s in specs if s.is_glob and s.matches(ref.schema, ref.name))
    return (f"not replacing {ref.qualified} on the target: it is matched only by the glob "
            f"{globs} and nightcopy did not create it (a glob replaces only the tables "
            "nightcopy created or replaced); to replace it, name it explicitly in the table "
            f"list, or let globs take over existing tables with {_HOW_TO_ADOPT}")


def unmanaged_on_target(conn: connection, tables: Sequence[TableRef]) -> set[str]:
    """For readers that say what a night would refuse (validate, --dry-run): which of `tables`
    exist on the target as tables nightcopy did not create, replace or adopt (ledger
    managed_oids: none without a ledger). Reads only."""
    managed = ledger.managed_oids(conn)
    with conn.cursor() as cur:
        cur.execute("""SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname), c.oid
                         FROM pg_catalog.pg_class c
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.relkind IN ('r', 'p')
                          AND pg_catalog.format('%%I.%%I', n.nspname, c.relname) = ANY(%s)""",
                    ([t.qualified for t in tables],))
        on_target = dict(cur.fetchall())
    conn.rollback()
    return {name for name, oid in on_target.items() if oid not in managed}


@dataclass(frozen=True)
class TableGuard:
    specs: tuple[TableSpec, ...]  # the invocation's table list, as parsed
    adopt: bool = False
    trust: Trust = field(default_factory=Trust)

    def before_load(self, cur: cursor, d: TableDef, old: TargetTable | None) -> None:
        """Refuse a glob-only match nightcopy does not manage, and a column whose target domain
        calls untrusted code; drop trusted target-side code from what truncate refuses."""
        # Checked up front too (engine/trust.refused_tables); again here, where every type the
        # table needs exists (a domain nested in a type nightcopy just created) and as the
        # domains stand when the load starts.
        domain_refusal = target_domain_refusals(cur, [d], self.trust).get(d.ref.oid)
        if domain_refusal is not None:
            raise TableError(domain_refusal)
        if old is None:
            return
        ref = d.ref
        if not self.adopt and not named(self.specs, ref) and not ledger.is_managed(cur, old.oid):
            raise TableError(unmanaged_glob_match(self.specs, ref))
        old.user_code = user_code.without_trusted(cur, old.user_code, self.trust.covers_function)

    def after_load(self, cur: cursor, ref: TableRef, run_id: str,
                   old: TargetTable | None) -> None:
        ledger.record_managed(cur, ref.qualified, run_id, old.oid if old is not None else None)
