"""What already stands on the target under a table's name, and what depends on it there."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg2.extensions import cursor

from nightcopy.engine.catalog import _index_body


@dataclass
class ViewDef:
    oid: int
    qualified: str
    definition: str
    options: list[str]
    owner: str
    acl: list[tuple[str, str]]
    comment: str | None
    column_comments: list[tuple[str, str]]
    depth: int


@dataclass
class TargetTable:
    oid: int
    kind: str
    owner: str
    acl: list[tuple[str, str]] = field(default_factory=list)
    column_acl: list[tuple[str, str, str]] = field(default_factory=list)
    views: list[ViewDef] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # target-side objects the swap cannot keep
    # Statements to run on the new table: head + table name + tail (tail None: head alone).
    carry_over: list[tuple[str, str | None]] = field(default_factory=list)
    publications: list[str] = field(default_factory=list)
    incoming_fks: list[tuple[str, str]] = field(default_factory=list)  # (table, constraint)
    owned_sequences: list[str] = field(default_factory=list)
    referenced_tables: list[str] = field(default_factory=list)  # its foreign keys point there
    indexes: dict[str, tuple[bool, str]] = field(default_factory=dict)  # name -> (unique, body)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, type) non-generated
    leaves: list[str] = field(default_factory=list)
    partition_oids: list[int] = field(default_factory=list)


KIND_NAMES = {"v": "a view", "m": "a materialized view", "f": "a foreign table",
              "S": "a sequence", "c": "a composite type", "i": "an index", "I": "an index"}


def find_relation(cur: cursor, schema: str, name: str) -> tuple[int, str, str] | None:
    cur.execute("""SELECT c.oid, c.relkind, pg_catalog.pg_get_userbyid(c.relowner)
                     FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relname = %s""", (schema, name))
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


def inspect(cur: cursor, schema: str, name: str, listed: set[str]) -> TargetTable | None:
    """Describe the existing target table (None when there is none)."""
    found = find_relation(cur, schema, name)
    if found is None:
        return None
    oid, kind, owner = found
    t = TargetTable(oid, kind, owner)
    if kind not in ("r", "p"):
        return t
    cur.execute("""
        WITH RECURSIVE tree AS (
            SELECT %s::oid AS oid
            UNION ALL
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
        SELECT t.oid, c.relkind, format('%%I.%%I', n.nspname, c.relname)
          FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace""", (oid,))
    family = cur.fetchall()
    rel_oids = [r[0] for r in family]
    t.partition_oids = [r[0] for r in family if r[0] != oid]
    t.leaves = sorted(r[2] for r in family if r[0] != oid and r[1] == "r")

    cur.execute("""
        SELECT NULL::text, COALESCE(r.rolname, 'PUBLIC'), a.privilege_type
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = %s AND a.grantee <> c.relowner
        UNION ALL
        SELECT att.attname, COALESCE(r.rolname, 'PUBLIC'), a.privilege_type
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0
               AND NOT att.attisdropped AND att.attacl IS NOT NULL,
               pg_catalog.aclexplode(att.attacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = %s AND a.grantee <> c.relowner""", (oid, oid))
    for column, grantee, privilege in cur.fetchall():
        if column is None:
            t.acl.append((grantee, privilege))
        else:
            t.column_acl.append((column, grantee, privilege))

    cur.execute("""
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
         ORDER BY a.attnum""", (oid,))
    t.columns = [(r[0], r[1]) for r in cur.fetchall()]

    # Views (and views on views) that depend on the table or its partitions.
    cur.execute("""
        WITH RECURSIVE deps AS (
            SELECT DISTINCT r.ev_class AS oid, 1 AS depth
              FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.refobjid = ANY(%s::oid[]) AND r.ev_class <> ALL(%s::oid[])
            UNION ALL
            SELECT r.ev_class, deps.depth + 1
              FROM deps JOIN pg_catalog.pg_depend d ON d.refobjid = deps.oid
               AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
              JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
             WHERE r.ev_class <> deps.oid AND deps.depth < 50)
        SELECT c.oid, max(deps.depth), c.relkind, format('%%I.%%I', n.nspname, c.relname),
               CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END,
               c.reloptions, pg_catalog.pg_get_userbyid(c.relowner),
               pg_catalog.obj_description(c.oid, 'pg_class')
          FROM deps JOIN pg_catalog.pg_class c ON c.oid = deps.oid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         GROUP BY c.oid, c.relkind, n.nspname, c.relname
         ORDER BY max(deps.depth), c.oid""", (rel_oids, rel_oids))
    for void, depth, vkind, vname, vdef, vopts, vowner, vcomment in cur.fetchall():
        if vkind != "v":
            t.blockers.append(f"{KIND_NAMES.get(vkind, 'an object')} {vname} depends on it")
            continue
        cur.execute("""
            SELECT COALESCE(r.rolname, 'PUBLIC'), a.privilege_type
              FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
              LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
             WHERE c.oid = %s AND a.grantee <> c.relowner""", (void,))
        vacl = [(r[0], r[1]) for r in cur.fetchall()]
        cur.execute("""SELECT a.attname, d.description FROM pg_catalog.pg_description d
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid
                          AND a.attnum = d.objsubid
                        WHERE d.objoid = %s AND d.classoid = 'pg_catalog.pg_class'::regclass
                          AND d.objsubid > 0""", (void,))
        t.views.append(ViewDef(void, vname, vdef, list(vopts or []), vowner, vacl, vcomment,
                               [(r[0], r[1]) for r in cur.fetchall()], depth))

    cur.execute("""SELECT t.tgname FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal
                      AND t.tgparentid = 0""" if cur.connection.server_version >= 130000 else
                """SELECT t.tgname FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal""", (rel_oids,))
    t.blockers += [f"trigger {r[0]} is defined on it" for r in cur.fetchall()]
    cur.execute("""SELECT r.rulename FROM pg_catalog.pg_rewrite r
                    WHERE r.ev_class = ANY(%s::oid[]) AND r.rulename <> '_RETURN'""", (rel_oids,))
    t.blockers += [f"rule {r[0]} is defined on it" for r in cur.fetchall()]

    cur.execute("""
        SELECT format('%%I.%%I', n.nspname, c.relname), k.conname
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.confrelid = ANY(%s::oid[])
           AND k.conrelid <> ALL(%s::oid[]) AND k.conparentid = 0""", (rel_oids, rel_oids))
    for table, conname in cur.fetchall():
        if table in listed:
            t.incoming_fks.append((table, conname))
        else:
            t.blockers.append(f"foreign key {conname} of table {table} (not in this copy) "
                              "references it")

    cur.execute("""
        SELECT DISTINCT format('%%I.%%I', n.nspname, c.relname)
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class c ON c.oid = k.confrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.conrelid = ANY(%s::oid[])
           AND k.confrelid <> ALL(%s::oid[])""", (rel_oids, rel_oids))
    t.referenced_tables = sorted(r[0] for r in cur.fetchall())

    # Target-side row-level security, extended statistics and publication membership are
    # re-created on the new table by the swap (as statements captured here).
    cur.execute("""
        SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_catalog.pg_class c
         WHERE c.oid = %s""", (oid,))
    rls, force = cur.fetchone()
    if rls:
        t.carry_over.append(("ALTER TABLE ", " ENABLE ROW LEVEL SECURITY"))
    if force:
        t.carry_over.append(("ALTER TABLE ", " FORCE ROW LEVEL SECURITY"))
    cur.execute("""
        SELECT format('CREATE POLICY %%I ON ', p.polname), format(' AS %%s FOR %%s TO %%s%%s%%s',
                      CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                      CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                           WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                      (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC'
                                              ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r))
                                         END, ', ')
                         FROM unnest(p.polroles) AS r),
                      ' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')',
                      ' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')')
          FROM pg_catalog.pg_policy p WHERE p.polrelid = %s ORDER BY p.polname""", (oid,))
    t.carry_over += [(r[0], r[1]) for r in cur.fetchall()]
    cur.execute("""SELECT pg_catalog.pg_get_statisticsobjdef(s.oid)
                     FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid = %s""", (oid,))
    # The definition names the table by its (unchanged) qualified name.
    t.carry_over += [(r[0], None) for r in cur.fetchall()]
    cur.execute("""SELECT pg_catalog.quote_ident(p.pubname)
                     FROM pg_catalog.pg_publication_rel pr
                     JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
                    WHERE pr.prrelid = %s""", (oid,))
    t.publications = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT count(*) FROM pg_catalog.pg_policy WHERE polrelid = ANY(%s::oid[]) "
                "AND polrelid <> %s", (rel_oids, oid))
    if cur.fetchone()[0]:
        t.lost.append("row-level security policies on its partitions")

    # Sequences owned by the old table's columns (serial): they must outlive the DROP.
    cur.execute("""
        SELECT format('%%I.%%I', n.nspname, s.relname)
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
          JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refobjid = %s AND d.deptype = 'a'""", (oid,))
    t.owned_sequences = [r[0] for r in cur.fetchall()]

    cur.execute("""
        SELECT ic.relname, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid),
               pg_catalog.quote_ident(ic.relname), format('%%I.%%I', n.nspname, c.relname)
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = %s
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                            WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)""", (oid,))
    for iname, unique, idef, qiname, table in cur.fetchall():
        t.indexes[iname] = (unique, _index_body(idef, qiname, table, unique))
    return t
