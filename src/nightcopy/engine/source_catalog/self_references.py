"""Definitions that name their own table: a STORED generated column `tableoid =
'app.t'::regclass`, a CHECK or a default holding the table's own regclass.

Why they need care: a regclass constant is stored as the table's oid and deparsed as its name,
schema-qualified (`'app.t'::regclass`). The staged copy is built in nightcopy_stage_app, so on
the target that text names the *old* table (or nothing, on a first copy: "relation does not
exist"), and the generated values would be computed against it.

Mechanism (no definition text is edited): the catalog deparses these expressions again, on
the source, with the table's own schema on the search path, so that every name of that schema,
the table's own included, is printed unqualified (`'t'::regclass`; the deparser still
qualifies whatever the path would resolve differently). The target then creates the staged
table with the search path `nightcopy_stage_app, app` (target_ddl.self_reference_path): the
table's own name resolves to the staged table, whose oid the constant keeps through the swap,
and every other name resolves as on the source (the staging schema holds only the worker's
staged tables: target_catalog/schema_owners). Found in the stored expression trees: any
regclass constant in a default or a CHECK. pg_depend does not do: when the expression also
names a column, PostgreSQL folds the whole-table reference into the column's.

Partitions' own CHECKs are covered the same way (each deparsed with its own schema on the
path). Not covered: index expressions naming their table (rare enough to leave to a report).
"""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.sql_names import quote_ident

# 2205: regclass. A constant of it in a stored expression tree is printed as
# ":consttype 2205 "; any such default or CHECK is re-deparsed (a constant naming another
# table is a false positive that costs only that: the names resolve the same).
_SELF_REFERENCES_SQL = """
SELECT ad.adrelid, true, ad.oid FROM pg_catalog.pg_attrdef ad
 WHERE ad.adrelid = ANY(%s::oid[]) AND ad.adbin::text LIKE '%%:consttype 2205 %%'
UNION ALL
SELECT k.conrelid, false, k.oid FROM pg_catalog.pg_constraint k
 WHERE k.conrelid = ANY(%s::oid[]) AND k.contype = 'c' AND k.conislocal
   AND k.conbin::text LIKE '%%:consttype 2205 %%'
 ORDER BY 1, 2, 3"""


def read_self_references(cur: cursor, found: DefinitionSet) -> None:
    refs = fetch_all(cur, _SELF_REFERENCES_SQL, (found.table_oids, found.relation_oids))
    if not refs:
        return
    root_of = {p.oid: root for root, t in found.tables.items() for p in t.partitions}
    try:
        for relid, is_default, objid in refs:
            if relid in root_of:  # a partition's own CHECK
                partition = found.partitions[relid]
                cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)",
                            (quote_ident(partition.schema),))
                name, text = fetch_all(cur, "SELECT k.conname, pg_catalog.pg_get_constraintdef"
                                       "(k.oid) FROM pg_catalog.pg_constraint k WHERE k.oid = %s",
                                       (objid,))[0]
                for k in partition.constraints:
                    if k.name == name:
                        k.definition = text
                found.tables[root_of[relid]].names_itself = True
                continue
            table = found.tables[relid]
            cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)",
                        (quote_ident(table.ref.schema),))
            if is_default:
                name, text = fetch_all(cur, """
                    SELECT a.attname, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid)
                      FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_attribute a
                        ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                     WHERE ad.oid = %s""", (objid,))[0]
                column = table.column(name)
                if column is not None:
                    column.default = text
            else:
                name, text = fetch_all(cur, "SELECT k.conname, pg_catalog.pg_get_constraintdef"
                                       "(k.oid) FROM pg_catalog.pg_constraint k WHERE k.oid = %s",
                                       (objid,))[0]
                for k in table.constraints:
                    if k.name == name:
                        k.definition = text
            table.names_itself = True
    finally:
        # Back to the empty path every definition session reads under (connection.py).
        cur.execute("SELECT pg_catalog.set_config('search_path', '', true)")
