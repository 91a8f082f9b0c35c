"""Sequences the tables use: identity sequences (internal to their column) and sequences
named in column defaults (serial columns, or sequences shared between tables), with their
options and their exact state (last_value and is_called)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import Row, fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import SequenceDef
from nightcopy.errors import ConfigError


def read_sequences(cur: cursor, found: DefinitionSet) -> None:
    identity = fetch_all(cur, """
        SELECT d.refobjid, a.attname, d.objid
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.deptype = 'i' AND d.refobjid = ANY(%s::oid[]) AND a.attidentity <> ''
        """, (found.table_oids,))
    if identity:
        seqs = _sequence_defs(cur, [seqoid for _, _, seqoid in identity])
        for relid, attname, seqoid in identity:
            column = found.tables[relid].column(attname)
            if column is not None:
                column.identity_seq = seqs[seqoid]
    used = fetch_all(cur, """
        SELECT DISTINCT ad.adrelid, d.refobjid, a.attname
          FROM pg_catalog.pg_attrdef ad
          JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
          JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
         WHERE ad.adrelid = ANY(%s::oid[])
         ORDER BY ad.adrelid, a.attname""", (found.table_oids,))
    if used:
        seqs = _sequence_defs(cur, list({seqoid for _, seqoid, _ in used}))
        for relid, seqoid, attname in used:
            table = found.tables[relid]
            if seqs[seqoid] not in table.sequences:
                table.sequences.append(seqs[seqoid])
            column = table.column(attname)
            if column is not None:
                column.default_seq = seqs[seqoid]


def _sequence_defs(cur: cursor, oids: list[int]) -> dict[int, SequenceDef]:
    """The sequences' options, exact state and owning column, by oid."""
    _check_sequences_readable(cur, oids)
    rows = fetch_all(cur, """
        SELECT s.oid, format('%%I.%%I', n.nspname, s.relname), n.nspname, s.relname,
               pg_catalog.format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin,
               q.seqmax, q.seqcache, q.seqcycle, pg_catalog.pg_sequence_last_value(s.oid),
               od.refobjid, oa.attname,
               pg_catalog.has_sequence_privilege(s.oid, 'SELECT')
          FROM pg_catalog.pg_class s
          JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
          JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
          LEFT JOIN pg_catalog.pg_depend od
                 ON od.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND od.objid = s.oid
                AND od.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND od.deptype IN ('a', 'i')
          LEFT JOIN pg_catalog.pg_attribute oa ON oa.attrelid = od.refobjid
                AND oa.attnum = od.refobjsubid
         WHERE s.oid = ANY(%s::oid[])""", (oids,))
    # pg_sequence_last_value() is NULL when is_called is false, which loses a setval(s, n,
    # false): where the role may SELECT the sequence, read both fields from the sequence itself
    # (as pg_dump does), all sequences in one round trip. The names come quoted by format().
    readable = [(row[0], row[1]) for row in rows if row[14]]
    state: dict[int, tuple[int, bool]] = {}
    if readable:
        union = " UNION ALL ".join(f"SELECT {oid}::oid, last_value, is_called FROM {name}"
                                   for oid, name in readable)
        state = {oid: (last, called) for oid, last, called in fetch_all(cur, union)}
    return {row[0]: _sequence_def(row, state.get(row[0])) for row in rows}


def _sequence_def(row: Row, state: tuple[int, bool] | None) -> SequenceDef:
    (oid, qualified, schema, name, type_sql, start, increment, minvalue, maxvalue, cache, cycle,
     last_value, owner_table_oid, owner_column, _readable) = row
    if state is not None:
        last_value, is_called = state
    elif last_value is not None:
        is_called = True
    else:  # USAGE only, and never called (or setval(..., false)): the closest we can know
        last_value, is_called = start, False
    return SequenceDef(oid, qualified, schema, name, type_sql, start, increment, minvalue,
                       maxvalue, cache, cycle, last_value, owner_table_oid, owner_column,
                       is_called)


def _check_sequences_readable(cur: cursor, oids: list[int]) -> None:
    """Refuse, before anything is written, sequences the source role may not read: their state
    (pg_sequence_last_value) needs SELECT or USAGE, and the night would otherwise fail as an
    internal error. Like the tables' check, it names the GRANT to run; a table the role may not
    read either is named first (its GRANT is the one to run first), as that check words it."""
    tables = [row[0] for row in fetch_all(cur, """
        SELECT DISTINCT format('%%I.%%I', n.nspname, t.relname)
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
          JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objid = ANY(%s::oid[]) AND NOT pg_catalog.has_table_privilege(t.oid, 'SELECT')
         ORDER BY 1""", (oids,))]
    if tables:
        raise ConfigError(f"the source role may not read {', '.join(tables[:5])}: GRANT SELECT ON "
                          f"{tables[0]} (and the others) TO it, partitions included")
    denied = [row[0] for row in fetch_all(cur, """
        SELECT format('%%I.%%I', n.nspname, s.relname)
          FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
         WHERE s.oid = ANY(%s::oid[])
           AND NOT pg_catalog.has_sequence_privilege(s.oid, 'SELECT')
           AND NOT pg_catalog.has_sequence_privilege(s.oid, 'USAGE')
         ORDER BY 1""", (oids,))]
    if denied:
        shown = ", ".join(denied[:5]) + (f" and {len(denied) - 5} more" if len(denied) > 5
                                         else "")
        raise ConfigError(f"the source role may not read sequence {shown} (the copied tables' "
                          f"defaults or identity columns use it): GRANT SELECT ON SEQUENCE "
                          f"{', '.join(denied)} TO the source role")
