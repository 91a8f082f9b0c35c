"""Issue 12: every session forces the settings that definition text depends on, whatever the
database or role defaults say (a database set to standard_conforming_strings = off, or a
search_path leading to a schema someone else controls)."""

from __future__ import annotations

import psycopg2.extensions

from nightcopy.engine import target_ddl
from nightcopy.engine.connection import DEFINITION_SETTINGS, connect
from nightcopy.engine.table_model import SequenceDef


def _hostile_defaults(db) -> str:
    dbname = psycopg2.extensions.parse_dsn(db.dsn)["dbname"]
    db.execute(f'''ALTER DATABASE "{dbname}" SET standard_conforming_strings = off;
                   ALTER DATABASE "{dbname}" SET search_path = public, pg_catalog;
                   ALTER DATABASE "{dbname}" SET check_function_bodies = off;
                   ALTER DATABASE "{dbname}" SET xmloption = document''')
    return dbname


def test_sessions_force_the_definition_settings_over_the_databases_defaults(dbs):
    _hostile_defaults(dbs.target)
    conn = connect(dbs.target.dsn, "target", "test")
    try:
        with conn.cursor() as cur:
            for name, wanted in DEFINITION_SETTINGS.items():
                cur.execute("SELECT pg_catalog.current_setting(%s)", (name,))
                row = cur.fetchone()
                assert row is not None
                shown = row[0]
                assert shown == wanted or (name == "search_path" and shown == '""'), (name, shown)
    finally:
        conn.close()


def test_setval_takes_a_sequence_name_with_quotes_and_backslashes_as_a_parameter(dbs):
    """set_sequence_value() passes the name to the driver instead of splicing it into a literal
    by hand (the old code doubled quotes only, and so relied on standard strings)."""
    _hostile_defaults(dbs.target)
    dbs.target.execute('CREATE SEQUENCE public."it\'s\\ odd"')
    conn = connect(dbs.target.dsn, "target", "test")
    try:
        seq = SequenceDef(oid=0, qualified='public."it\'s\\ odd"', schema="public",
                          name="it's\\ odd", type_sql="bigint", start=1,
                          increment=1, minvalue=1, maxvalue=100, cache=1, cycle=False,
                          last_value=42)
        with conn.cursor() as cur:
            target_ddl.set_sequence_value(cur, seq, seq.qualified)
        conn.commit()
    finally:
        conn.close()
    assert dbs.target.scalar('SELECT last_value FROM public."it\'s\\ odd"') == 42
