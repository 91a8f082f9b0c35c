"""The run ledger: a small schema in the target database recording runs and per-table results.

It is never copied (globs skip it) and is versioned in nightcopy.meta so later releases can
migrate it. A table's result row is written in the same transaction as its swap commit, so
"recorded as copied" and "really swapped in" can never disagree, also after a kill -9.
"""

from __future__ import annotations

import json
import socket

from psycopg2.extensions import connection

from nightcopy import __version__

LEDGER_SCHEMA = "nightcopy"
LEDGER_VERSION = 1

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA};
CREATE TABLE IF NOT EXISTS {LEDGER_SCHEMA}.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {LEDGER_SCHEMA}.runs (
    run_id            text NOT NULL,
    group_name        text NOT NULL DEFAULT '',
    status            text NOT NULL,          -- running | succeeded | failed
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    tables            integer,
    failed            integer,
    rows              bigint,
    bytes             bigint,
    seconds           double precision,
    host              text,
    nightcopy_version text,
    options           jsonb,
    PRIMARY KEY (run_id, group_name)
);
CREATE TABLE IF NOT EXISTS {LEDGER_SCHEMA}.table_results (
    run_id            text NOT NULL,
    table_name        text NOT NULL,          -- format('%I.%I', schema, table)
    group_name        text NOT NULL DEFAULT '',
    status            text NOT NULL,          -- copied | failed
    rows              bigint,
    bytes             bigint,
    seconds           double precision,
    copy_seconds      double precision,
    index_seconds     double precision,
    lock_wait_seconds double precision,
    attempts          integer NOT NULL DEFAULT 1,
    error             text,
    started_at        timestamptz,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name)
);
CREATE INDEX IF NOT EXISTS table_results_finished_idx
    ON {LEDGER_SCHEMA}.table_results (finished_at);
"""


def ensure_ledger(conn: connection) -> None:
    """Create or migrate the ledger (its own committed transaction, serialised by a lock)."""
    with conn.cursor() as cur:
        # Two workers starting at once would race on CREATE SCHEMA IF NOT EXISTS.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('nightcopy.ledger'))")
        cur.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'meta'",
            (LEDGER_SCHEMA,),
        )
        if cur.fetchone() is None:
            cur.execute(_DDL)
            cur.execute(
                f"INSERT INTO {LEDGER_SCHEMA}.meta VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (str(LEDGER_VERSION),),
            )
    conn.commit()


def finished_tables(conn: connection, run_id: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT table_name FROM {LEDGER_SCHEMA}.table_results"
            " WHERE run_id = %s AND status = 'copied'",
            (run_id,),
        )
        rows = cur.fetchall()
    conn.commit()
    return {r[0] for r in rows}


def start_run(conn: connection, run_id: str, group: str | None, options: dict) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {LEDGER_SCHEMA}.runs
                    (run_id, group_name, status, host, nightcopy_version, options)
                VALUES (%s, %s, 'running', %s, %s, %s)
                ON CONFLICT (run_id, group_name) DO UPDATE
                   SET status = 'running', finished_at = NULL""",
            (run_id, group or "", socket.gethostname(), __version__, json.dumps(options)),
        )
    conn.commit()


def finish_run(conn: connection, run_id: str, group: str | None, summary: dict) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"""UPDATE {LEDGER_SCHEMA}.runs
                   SET status = %s, finished_at = now(), tables = %s, failed = %s,
                       rows = %s, bytes = %s, seconds = %s
                 WHERE run_id = %s AND group_name = %s""",
            (summary["status"], summary["tables"], summary["failed"], summary["rows"],
             summary["bytes"], summary["seconds"], run_id, group or ""),
        )
    conn.commit()


RECORD_TABLE_SQL = f"""
INSERT INTO {LEDGER_SCHEMA}.table_results
    (run_id, table_name, group_name, status, rows, bytes, seconds, copy_seconds,
     index_seconds, lock_wait_seconds, error, started_at, finished_at)
VALUES (%(run_id)s, %(table)s, %(group)s, %(status)s, %(rows)s, %(bytes)s, %(seconds)s,
        %(copy_seconds)s, %(index_seconds)s, %(lock_wait_seconds)s, %(error)s,
        to_timestamp(%(started_at)s), now())
ON CONFLICT (run_id, table_name) DO UPDATE SET
    group_name = EXCLUDED.group_name, status = EXCLUDED.status, rows = EXCLUDED.rows,
    bytes = EXCLUDED.bytes, seconds = EXCLUDED.seconds, copy_seconds = EXCLUDED.copy_seconds,
    index_seconds = EXCLUDED.index_seconds, lock_wait_seconds = EXCLUDED.lock_wait_seconds,
    error = EXCLUDED.error, started_at = EXCLUDED.started_at, finished_at = now(),
    attempts = {LEDGER_SCHEMA}.table_results.attempts + 1
"""
