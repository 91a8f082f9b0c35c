"""Embedded PostgreSQL 18 servers configured like the anchors (fsync on, shared_buffers,
maintenance_work_mem), plus the server-side CPU accounting the benchmark reports."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import psycopg2.extensions

from nightcopy.sample.servers import EmbeddedServer, start_server


def execute_sql(dsn: str, sql: str) -> None:
    """Run SQL in autocommit mode (CREATE DATABASE, VACUUM and CHECKPOINT need it), quietly."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET client_min_messages = warning")
            cur.execute(sql)
    finally:
        conn.close()


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
        execute_sql(self.dsn(database) if database else self.admin_dsn, sql)

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


def _proc_cpu(pid: int) -> float | None:
    """utime+stime of one process from /proc (zombies included: their times stay readable until
    they are reaped, and then move into the parent's children totals)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(servers: list[BenchServer], limit: float = 5.0) -> None:
    """Wait until the run's client backends have exited and been reaped.

    A backend exits a moment after its client disconnects; sampled in that moment, its CPU would
    be in neither the live children nor the postmaster's reaped-children totals."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = False
        for s in servers:
            for child in s.postmaster().children():
                try:
                    if child.status() == psutil.STATUS_ZOMBIE or "[local]" in " ".join(child.cmdline()):
                        busy = True
                        break
                except psutil.NoSuchProcess:
                    continue
            if busy:
                break
        if not busy:
            return
        time.sleep(0.05)


def cpu_seconds(servers: list[BenchServer]) -> float:
    """User+system CPU-seconds used so far by the servers' processes.

    Backends exit when their connection closes, so summing live processes would miss them; the
    postmaster reaps every child, so its children_user/children_system carry the exited ones.
    Sampled before and after a run, the difference is what the run cost the servers. A child
    reaped while we read would be counted in neither place (or twice), so each server is read
    until its reaped-children total did not move during the read."""
    _settle(servers)
    total = 0.0
    for s in servers:
        pm = s.postmaster()
        for _ in range(20):
            before = pm.cpu_times()
            live = 0.0
            for child in pm.children():
                cpu = _proc_cpu(child.pid)
                live += cpu or 0.0
            after = pm.cpu_times()
            if (before.children_user, before.children_system) == (after.children_user,
                                                                   after.children_system):
                break
        total += after.user + after.system + after.children_user + after.children_system + live
    return total


def ensure_runtime_dir() -> None:
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(f"/tmp/nightcopy-xdg-{os.getuid()}")
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)
