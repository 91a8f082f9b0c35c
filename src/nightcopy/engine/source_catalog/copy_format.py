"""Binary COPY where it is portable; text for columns whose binary form carries OIDs."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import Row, fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.source_catalog.types import FIRST_USER_OID

# reg* types carry OIDs that differ between databases: their binary form is not portable.
REG_TYPES = {"regclass", "regtype", "regproc", "regprocedure", "regoper", "regoperator",
             "regconfig", "regdictionary", "regnamespace", "regrole", "regcollation"}


def choose_copy_formats(cur: cursor, found: DefinitionSet) -> None:
    """Binary COPY where it is portable; text for columns whose binary form carries OIDs."""
    type_oids = {c.type_oid for d in found.tables.values() for c in d.columns}
    if not type_oids:
        return
    info: dict[int, Row] = {}
    pending = set(type_oids)
    while pending:
        rows = fetch_all(cur, """
            SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype, t.typcategory,
                   t.typsend <> 0 AND t.typreceive <> 0, n.nspname
              FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             WHERE t.oid = ANY(%s::oid[])""", (list(pending),))
        pending = set()
        for row in rows:
            info[row[0]] = row
            for ref in (row[3], row[4]):
                if ref and ref not in info:
                    pending.add(ref)

    def portable(oid: int) -> tuple[bool, str]:
        oid_, name, typtype, elem, base, category, has_binary, schema = info[oid]
        if typtype == "d":
            return portable(base)
        if not has_binary:
            return False, f"type {name} has no binary I/O"
        if name in REG_TYPES:
            return False, f"type {name} holds OIDs"
        if typtype == "e":
            return True, ""  # enums travel as their label
        if category == "A" and elem:
            elem_info = info[elem]
            if elem_info[2] == "d" or elem >= FIRST_USER_OID or elem_info[2] in ("c", "e"):
                return False, f"array type {name} carries its element type's OID"
            return portable(elem)
        if typtype == "c":
            return False, f"composite type {name} carries OIDs"
        if oid >= FIRST_USER_OID:
            return False, f"type {schema}.{name} is not built in"
        return True, ""

    for d in found.tables.values():
        for col in d.copy_columns:
            ok, why = portable(col.type_oid)
            if not ok:
                d.binary, d.text_reason = False, f"column {col.name}: {why}"
                break
