"""Constraints: keys, checks, exclusions, foreign keys (not NOT NULL ones, not those a
partition inherits from its partitioned parent)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import Constraint


def read_constraints(cur: cursor, found: DefinitionSet) -> None:
    for relid, name, kind, definition, comment, validated, ref in fetch_all(cur, """
        SELECT k.conrelid, k.conname, k.contype, pg_catalog.pg_get_constraintdef(k.oid),
               pg_catalog.obj_description(k.oid, 'pg_constraint'), k.convalidated,
               NULLIF(k.confrelid, 0)
          FROM pg_catalog.pg_constraint k
         WHERE k.conrelid = ANY(%s::oid[]) AND k.contype IN ('p', 'u', 'c', 'x', 'f')
           AND k.conislocal AND k.conparentid = 0
         ORDER BY k.conrelid, k.contype, k.conname""", (found.relation_oids,)):
        constraint = Constraint(name, kind, definition, comment, validated, ref)
        if relid in found.tables:
            found.tables[relid].constraints.append(constraint)
        elif kind in ("c", "p", "u", "x"):
            found.partitions[relid].constraints.append(constraint)
