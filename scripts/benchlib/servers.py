"""Embedded PostgreSQL 18 servers configured like the anchors (fsync on, shared_buffers,
maintenance_work_mem), plus the server-side CPU accounting the benchmark reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import psycopg2.extensions

from nightcopy.embedded import EmbeddedServer, start_server


@dataclass
class BenchServer:
    name: str
    server: EmbeddedServer
    settings: dict[str, str]

    @property
    def admin_dsn(self) -> str:
        return self.server.dsn

    def dsn(self, database: str) -> str:
        return psycopg2.extensions.make_dsn(self.server.dsn, dbname=database)

    def postmaster(self) -> psutil.Process:
        return psutil.Process(self.server.handle.get_pid())  # type: ignore[attr-defined]

    def execute(self, sql: str, database: str | None = None) -> None:
        conn = psycopg2.connect(self.dsn(database) if database else self.admin_dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SET client_min_messages = warning")
                cur.execute(sql)
        finally:
            conn.close()

    def query(self, sql: str, database: str | None = None) -> list[tuple]:
        conn = psycopg2.connect(self.dsn(database) if database else self.admin_dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def recreate_database(self, name: str) -> None:
        # WITH (FORCE) also ends autovacuum workers still busy with the previous run's tables,
        # so their work is not billed to the next method.
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self.server.stop()


def start(base: Path, name: str, settings: dict[str, str]) -> BenchServer:
    """Start a server in base/name with `settings` applied (ALTER SYSTEM + restart, since
    shared_buffers and wal_level only change at server start). fsync stays on, as in the anchors."""
    pgdata = base / name
    # First start initialises the cluster and keeps it on stop, so the second start (with the
    # settings in postgresql.auto.conf) reuses it; that second handle deletes it on stop.
    first = start_server(pgdata, delete_on_stop=False)
    conn = psycopg2.connect(first.dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for key, value in settings.items():
            cur.execute(f"ALTER SYSTEM SET {key} = %s", (value,))
    conn.close()
    first.stop()
    server = start_server(pgdata, delete_on_stop=True)
    bench = BenchServer(name, server, settings)
    got = {k: bench.query(f"SHOW {k}")[0][0] for k in settings}
    for key, want in settings.items():
        if _norm(got[key]) != _norm(want):
            raise RuntimeError(f"server {name}: {key} is {got[key]!r}, wanted {want!r}")
    return bench


def _norm(v: str) -> str:
    return v.strip().lower().replace(" ", "")


def cpu_seconds(servers: list[BenchServer]) -> float:
    """User+system CPU-seconds used so far by the servers' processes.

    Backends exit when their connection closes, so summing live processes would miss them; the
    postmaster reaps every child, so its children_user/children_system carry the exited ones.
    Sampled before and after a run, the difference is what the run cost the servers."""
    total = 0.0
    for s in servers:
        pm = s.postmaster()
        t = pm.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
        for child in pm.children():
            try:
                ct = child.cpu_times()
                total += ct.user + ct.system
            except psutil.NoSuchProcess:
                # exited between listing and reading: it is now in the postmaster's
                # children_* totals of the next sample, a few ms of skew at most
                continue
    return total


def ensure_runtime_dir() -> None:
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(f"/tmp/nightcopy-xdg-{os.getuid()}")
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)
