"""User-defined types the columns need (and the types those need), dependencies first."""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine.needed_objects import dependencies_first
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import TypeDef

FIRST_USER_OID = 16384  # below: built into every PostgreSQL, the same OID everywhere


def load_types(conn: connection, type_oids: set[int]) -> list[TypeDef]:
    """The types in dependency order (a type after those it is built on)."""
    found: dict[int, TypeDef] = {}
    pending = {o for o in type_oids if o >= FIRST_USER_OID}
    while pending:
        with conn.cursor() as cur:
            rows = fetch_all(cur, """
            SELECT t.oid, n.nspname, t.typname, format('%%I.%%I', n.nspname, t.typname),
                   CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN 'A' ELSE t.typtype::text END,
                   (SELECT e.extname FROM pg_catalog.pg_depend d
                      JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                     WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                       AND d.objid = t.oid AND d.deptype = 'e' LIMIT 1),
                   (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                      FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
                   CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
                   t.typnotnull, t.typdefault,
                   (SELECT array_agg(format('CONSTRAINT %%I %%s', k.conname,
                                            pg_catalog.pg_get_constraintdef(k.oid)) ORDER BY k.conname)
                      FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'),
                   (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_catalog.pg_collation co
                      JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                     WHERE t.typtype = 'd' AND co.oid = t.typcollation
                       AND t.typcollation <> (SELECT b.typcollation FROM pg_catalog.pg_type b
                                               WHERE b.oid = t.typbasetype)),
                   (SELECT array_agg(format('%%I %%s', a.attname,
                                            pg_catalog.format_type(a.atttypid, a.atttypmod))
                                     ORDER BY a.attnum)
                      FROM pg_catalog.pg_attribute a
                     WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0
                       AND NOT a.attisdropped),
                   (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
                     WHERE r.rngtypid = t.oid),
                   (SELECT NULLIF(r.rngsubdiff::text, '-') FROM pg_catalog.pg_range r
                     WHERE r.rngtypid = t.oid),
                   (SELECT pg_catalog.format_type((to_jsonb(r) ->> 'rngmultitypid')::oid, NULL)
                      FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
                   array_remove(ARRAY[NULLIF(t.typelem, 0), NULLIF(t.typbasetype, 0),
                                      (SELECT r.rngsubtype FROM pg_catalog.pg_range r
                                        WHERE r.rngtypid = t.oid)]
                                || COALESCE((SELECT array_agg(a.atttypid) FROM pg_catalog.pg_attribute a
                                              WHERE t.typtype = 'c' AND a.attrelid = t.typrelid
                                                AND a.attnum > 0 AND NOT a.attisdropped),
                                            '{}'::oid[]), NULL),
                   (SELECT format('its input function %%s is written in %%s%%s', p.oid::pg_catalog.regprocedure,
                                  l.lanname, CASE WHEN p.probin IS NOT NULL
                                                  THEN format(' (module %%s)', p.probin) END)
                      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
                     WHERE t.typtype = 'b' AND p.oid = t.typinput)
              FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             WHERE t.oid = ANY(%s::oid[])""", (list(pending),))
        pending = set()
        for r in rows:
            td = TypeDef(oid=r[0], schema=r[1], name=r[2], qualified=r[3], kind=r[4],
                         extension=r[5], labels=r[6], base_sql=r[7], not_null=r[8], default=r[9],
                         checks=list(r[10] or []), collation=r[11], attributes=list(r[12] or []),
                         subtype_sql=r[13], subtype_diff=r[14], multirange=r[15],
                         depends=[int(o) for o in r[16] if int(o) >= FIRST_USER_OID],
                         io_functions=r[17])
            found[td.oid] = td
            pending.update(o for o in td.depends if o not in found)
    return dependencies_first(found, lambda t: t.depends)
