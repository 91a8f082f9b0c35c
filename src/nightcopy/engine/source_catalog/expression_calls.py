"""What the expressions evaluated while loading call: the functions, operators and operator
classes of CHECK constraints (table and domain), generated columns, index expressions and
predicates, exclusion constraints and partition keys (issue 12).

The target evaluates these for every row the worker loads, with the worker's privileges, and
resolves each name of the definition text on the target, where whoever may create a function
under that name decides what runs. So what they call is read here, on the source, in one query
for all tables; nightcopy.engine.trust decides what may run.

Mechanism: the stored expression trees (pg_node_tree: conbin, adbin, indexprs, indpred,
partexprs), which name every function (`:funcid`, `:opfuncid`), operator (`:opno`, `:opnos`)
and type (`:resulttype`, `:consttype`) by oid. pg_depend alone would not do: PostgreSQL records
no dependency on built-in (pinned) objects, so pg_notify() or pg_sleep() would not show. No
call can hide from the patterns (every one is printed so); a constant's value is printed as
bytes and names are escaped, so user text can at worst add a false match, which refuses. Domains
are followed through every type a column or an expression uses (base types, array elements,
composite attributes, range subtypes), their CHECKs read the same way. Only what is not a
built-in immutable function (pg_catalog, provolatile 'i') or a built-in operator / operator
class is returned: the rest is always allowed.

Column defaults are left out on purpose: COPY supplies every column, so a default (nextval(),
now(), gen_random_uuid()) is never evaluated while loading.
"""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import ExpressionCall

# Types below it were created by initdb, as was everything they are built on (the only domains
# among them, information_schema's, check with built-ins): the domain walk starts above it.
FIRST_USER_OID = 16384

# Regular expressions over nodeToString() output; no backslashes, so the text means the same
# whatever standard_conforming_strings says.
_FUNCTIONS = "':(funcid|opfuncid|hashfuncid|negfuncid|aggfnoid|winfnoid) ([0-9]+)'"
_OPERATORS = "':opno ([0-9]+)'"
_OPERATOR_LISTS = "':opnos [(]o ([0-9 ]+)[)]'"
_TYPES = "':(resulttype|consttype) ([0-9]+)'"
# The types one type `ty` (pg_type) reaches in one step: its base type, element type, composite
# attributes, range subtype and the types its domain CHECKs name. One fragment for both sides'
# recursive closures (this module's, and target_catalog/domain_calls on the target).
TYPES_A_TYPE_REACHES = """\
        SELECT NULLIF(ty.typbasetype, 0) UNION ALL SELECT NULLIF(ty.typelem, 0)
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
                   WHERE ty.typtype = 'c' AND a.attrelid = ty.typrelid AND a.attnum > 0
                     AND NOT a.attisdropped
        UNION ALL SELECT rg.rngsubtype FROM pg_catalog.pg_range rg WHERE rg.rngtypid = ty.oid
        UNION ALL SELECT m[2]::oid FROM pg_catalog.pg_constraint k,
                         regexp_matches(k.conbin::text, """ + _TYPES + """, 'g') m
                   WHERE k.contypid = ty.oid AND k.conbin IS NOT NULL"""

_CALLS_SQL = f"""
WITH RECURSIVE
rel(root, relid) AS (SELECT * FROM unnest(%s::oid[], %s::oid[])),
-- The stored expressions evaluated while loading, each with the words a message names it by.
tree(root, what, node) AS (
    SELECT r.root, format('the constraint %%I of %%s', k.conname, r.relid::pg_catalog.regclass),
           k.conbin::text
      FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.relid
     WHERE k.conbin IS NOT NULL
    UNION ALL
    SELECT r.root, format('the index %%s', i.indexrelid::pg_catalog.regclass),
           concat_ws(' ', i.indexprs::text, i.indpred::text)
      FROM rel r JOIN pg_catalog.pg_index i ON i.indrelid = r.relid
     WHERE i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
    UNION ALL
    SELECT r.root, format('the generated column %%I of %%s', a.attname,
                          r.relid::pg_catalog.regclass), ad.adbin::text
      FROM rel r JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = r.relid
      JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
     WHERE a.attgenerated <> ''
    UNION ALL
    SELECT r.root, format('the partition key of %%s', r.relid::pg_catalog.regclass),
           p.partexprs::text
      FROM rel r JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = r.relid
     WHERE p.partexprs IS NOT NULL),
-- Every type a column or an expression uses, and the types those are built on: a domain's
-- CHECK runs for every value of it, wherever it is nested (arrays, composites, ranges, and
-- the domains a domain's own CHECK casts to).
typ(root, what, typid) AS (
    SELECT r.root, format('the column %%I of %%s', a.attname, r.relid::pg_catalog.regclass),
           a.atttypid
      FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.relid
     WHERE a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= {FIRST_USER_OID}
    UNION ALL
    SELECT t.root, t.what, m[2]::oid FROM tree t,
           regexp_matches(t.node, {_TYPES}, 'g') m
     WHERE m[2]::oid >= {FIRST_USER_OID}
    UNION
    SELECT t.root, t.what, sub.typid
      FROM typ t JOIN pg_catalog.pg_type ty ON ty.oid = t.typid
     CROSS JOIN LATERAL (
{TYPES_A_TYPE_REACHES}
     ) sub(typid)
     WHERE sub.typid IS NOT NULL AND sub.typid <> 0),
domain_tree(root, what, node) AS (
    SELECT DISTINCT t.root, format('%%s (its type %%s)', t.what, t.typid::pg_catalog.regtype),
           k.conbin::text
      FROM typ t JOIN pg_catalog.pg_constraint k ON k.contypid = t.typid
     WHERE k.conbin IS NOT NULL),
all_tree AS (SELECT * FROM tree UNION ALL SELECT * FROM domain_tree),
direct(root, what, refclassid, refobjid) AS (
    SELECT t.root, t.what, 'pg_catalog.pg_proc'::pg_catalog.regclass, m[2]::oid
      FROM all_tree t, regexp_matches(t.node, {_FUNCTIONS}, 'g') m
    UNION
    SELECT t.root, t.what, 'pg_catalog.pg_operator'::pg_catalog.regclass, m[1]::oid
      FROM all_tree t, regexp_matches(t.node, {_OPERATORS}, 'g') m
    UNION
    SELECT t.root, t.what, 'pg_catalog.pg_operator'::pg_catalog.regclass, o::oid
      FROM all_tree t, regexp_matches(t.node, {_OPERATOR_LISTS}, 'g') m,
           unnest(string_to_array(m[1], ' ')) o
    UNION
    SELECT r.root, format('the constraint %%I of %%s', k.conname, r.relid::pg_catalog.regclass),
           'pg_catalog.pg_operator'::pg_catalog.regclass, o
      FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.relid,
           unnest(k.conexclop) o
    UNION
    SELECT r.root, format('the index %%s', i.indexrelid::pg_catalog.regclass),
           'pg_catalog.pg_opclass'::pg_catalog.regclass, o
      FROM rel r JOIN pg_catalog.pg_index i ON i.indrelid = r.relid,
           unnest(i.indclass::oid[]) o
    UNION
    SELECT r.root, format('the partition key of %%s', r.relid::pg_catalog.regclass),
           'pg_catalog.pg_opclass'::pg_catalog.regclass, o
      FROM rel r JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = r.relid,
           unnest(p.partclass::oid[]) o
    UNION
    SELECT t.root, format('%%s (its type %%s)', t.what, t.typid::pg_catalog.regtype),
           'pg_catalog.pg_proc'::pg_catalog.regclass, rg.rngcanonical
      FROM typ t JOIN pg_catalog.pg_range rg ON rg.rngtypid = t.typid
     WHERE rg.rngcanonical <> 0),
-- An operator runs its function: both must be allowed.
calls(root, what, refclassid, refobjid) AS (
    SELECT * FROM direct WHERE refobjid <> 0
    UNION
    SELECT c.root, c.what, 'pg_catalog.pg_proc'::pg_catalog.regclass, o.oprcode
      FROM direct c JOIN pg_catalog.pg_operator o ON o.oid = c.refobjid
     WHERE c.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass),
named(root, what, kind, signature, schema, name, built_in, refclassid, refobjid) AS (
    SELECT c.root, c.what, 'function',
           format('%%I.%%I(%%s)', n.nspname, p.proname,
                  pg_catalog.oidvectortypes(p.proargtypes)), n.nspname,
           p.proname::text, n.nspname = 'pg_catalog' AND p.provolatile = 'i',
           c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_proc p ON p.oid = c.refobjid
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE c.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION ALL
    SELECT c.root, c.what, 'operator',
           format('%%I.%%s(%%s,%%s)', n.nspname, o.oprname,
                  COALESCE(pg_catalog.format_type(NULLIF(o.oprleft, 0), NULL), 'NONE'),
                  COALESCE(pg_catalog.format_type(NULLIF(o.oprright, 0), NULL), 'NONE')),
           n.nspname,
           o.oprname::text, n.nspname = 'pg_catalog', c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_operator o ON o.oid = c.refobjid
      JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
     WHERE c.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
    UNION ALL
    SELECT c.root, c.what, 'operator class',
           format('%%I.%%I USING %%I', n.nspname, oc.opcname, am.amname), n.nspname,
           oc.opcname::text, n.nspname = 'pg_catalog', c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_opclass oc ON oc.oid = c.refobjid
      JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
      JOIN pg_catalog.pg_namespace n ON n.oid = oc.opcnamespace
     WHERE c.refclassid = 'pg_catalog.pg_opclass'::pg_catalog.regclass)
SELECT x.root, x.what, x.kind, x.signature, x.schema, x.name,
       (SELECT e.extname FROM pg_catalog.pg_depend de
          JOIN pg_catalog.pg_extension e ON e.oid = de.refobjid
         WHERE de.classid = x.refclassid AND de.objid = x.refobjid AND de.deptype = 'e'
           AND de.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass LIMIT 1)
  FROM named x WHERE NOT x.built_in
 ORDER BY x.root, x.what, x.kind, x.signature"""


def read_expression_calls(cur: cursor, found: DefinitionSet) -> None:
    roots = list(found.tables)
    relids = list(roots)
    for root, table in found.tables.items():
        for partition in table.partitions:
            roots.append(root)
            relids.append(partition.oid)
    for root, what, kind, signature, schema, name, extension in fetch_all(
            cur, _CALLS_SQL, (roots, relids)):
        found.tables[root].expression_calls.append(
            ExpressionCall(what, kind, signature, schema, name, extension))
