"""What a table's definition depends on, by pg_depend: the shared objects (extensions,
collations) that must exist on the target before the table can be created there.

A table's definition is the relation itself (its columns' types and collations), its indexes
(operator classes, access methods, collations, expression functions), its constraints (CHECK
expressions, exclusion operators), its column defaults and generated columns, and the
user-defined types its columns use (a domain over an extension's type, a composite type's
attributes). PostgreSQL records a dependency from each of these on every non-built-in object
its definition names, so pg_depend answers without parsing any expression text. Built-in
(pinned) objects are not recorded: they exist on every target.
"""

from __future__ import annotations

# Parameters: roots, relids (the listed tables and their partitions, each with its listed
# table), type roots and type oids (the user types each listed table uses). Defines `obj`
# (root, classid, objid): the objects of each table's definition, and `ref` (root, refclassid,
# refobjid): those objects and what they depend on.
DEFINITION_OBJECTS_CTE = """
rel(root, relid) AS (SELECT * FROM unnest(%(roots)s::oid[], %(relids)s::oid[])),
obj(root, classid, objid) AS (
    SELECT r.root, 'pg_catalog.pg_class'::pg_catalog.regclass, r.relid FROM rel r
    UNION ALL
    SELECT r.root, 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid
      FROM rel r JOIN pg_catalog.pg_index i ON i.indrelid = r.relid
    UNION ALL
    SELECT r.root, 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid
      FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.relid
    UNION ALL
    SELECT r.root, 'pg_catalog.pg_attrdef'::pg_catalog.regclass, ad.oid
      FROM rel r JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = r.relid
    UNION ALL
    SELECT t.root, 'pg_catalog.pg_type'::pg_catalog.regclass, t.typid
      FROM unnest(%(type_roots)s::oid[], %(type_oids)s::oid[]) t(root, typid)
    UNION ALL
    -- A composite type's attributes are the columns of its own pg_class row.
    SELECT t.root, 'pg_catalog.pg_class'::pg_catalog.regclass, ty.typrelid
      FROM unnest(%(type_roots)s::oid[], %(type_oids)s::oid[]) t(root, typid)
      JOIN pg_catalog.pg_type ty ON ty.oid = t.typid AND ty.typtype = 'c'),
ref(root, refclassid, refobjid) AS (
    SELECT o.root, o.classid, o.objid FROM obj o
    UNION
    SELECT o.root, d.refclassid, d.refobjid
      FROM obj o JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid
     WHERE d.deptype IN ('n', 'a')
    UNION
    -- An array type belongs to no extension itself: its element type does.
    SELECT o.root, 'pg_catalog.pg_type'::pg_catalog.regclass, el.typelem
      FROM obj o JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid
      JOIN pg_catalog.pg_type el ON el.oid = d.refobjid AND el.typelem <> 0
                                 AND el.typcategory = 'A'
     WHERE d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass)
"""


def definition_params(tables: dict, type_oids_of: dict[int, set[int]]) -> dict[str, list[int]]:
    """The CTE's parameters for the tables (TableDef by oid) and the user types each uses."""
    roots: list[int] = []
    relids: list[int] = []
    for root, table in tables.items():
        roots.append(root)
        relids.append(root)
        for partition in table.partitions:
            roots.append(root)
            relids.append(partition.oid)
    type_roots = [root for root, oids in type_oids_of.items() for _ in oids]
    type_oids = [oid for oids in type_oids_of.values() for oid in oids]
    return {"roots": roots, "relids": relids, "type_roots": type_roots, "type_oids": type_oids}
