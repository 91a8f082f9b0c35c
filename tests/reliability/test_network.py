"""Connections cut mid-COPY (issue 7): a TCP proxy on 127.0.0.1 drops the source or the target
connection once it has carried N bytes of the COPY stream. The worker fails that table with a
message naming the side, leaves the target table as it was, and retries it with --retries.
"""

from __future__ import annotations

import time

import psycopg2
import pytest
from rel_tools import (
    APP_PW,
    Worker,
    backends,
    check_output,
    ledger_text,
    staged_leftovers,
    table_checksum,
    unix_socket_of,
    wait_for,
    with_password,
)

SOURCE_SQL = """
CREATE TABLE public.big (id int PRIMARY KEY, v text);
INSERT INTO public.big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 15000) g;
CREATE TABLE public.small (id int PRIMARY KEY);
INSERT INTO public.small SELECT generate_series(1, 10);
"""
TARGET_SQL = """
CREATE TABLE public.big (id int PRIMARY KEY, v text);
INSERT INTO public.big VALUES (1, 'old');
"""
CUT_AFTER = 400_000  # bytes: well past the catalog queries, well before the end of big's COPY


def _setup(dbs) -> tuple[tuple, tuple]:
    dbs.source.execute(SOURCE_SQL)
    dbs.target.execute(TARGET_SQL)
    return (table_checksum(dbs.target.dsn, "public.big"),
            table_checksum(dbs.source.dsn, "public.big"))


def _run_cut(side: str, retries: int, dbs, proxies, tmp_path, cuts: int = 1):
    db = dbs.source if side == "source" else dbs.target
    proxy = proxies(unix_socket_of(db.dsn), cut_after=CUT_AFTER,
                    direction="down" if side == "source" else "up", cuts=cuts)
    source = proxy.dsn(dbs.source.dsn) if side == "source" else dbs.source.dsn
    target = proxy.dsn(dbs.target.dsn) if side == "target" else dbs.target.dsn
    w = Worker(["copy", "--source", with_password(source), "--target", with_password(target),
                "--tables", "public.big, public.small", "--retries", str(retries),
                "--run-id", f"cut-{side}-{retries}"], tmp_path / "w")
    code = w.wait(120)
    check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    assert proxy.cut_done >= 1, "the proxy never cut the connection (threshold too high?)"
    events = w.events
    assert events[-1]["event"] == "run_summary"
    # the other table is copied whatever happens to big
    assert any(e["event"] == "table_copied" and e["table"] == "public.small" for e in events)
    assert staged_leftovers(dbs.target.dsn) == []
    return code, w, events, proxy


def _ledger_status(dbs) -> list[str]:
    conn = psycopg2.connect(dbs.target.dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT status FROM nightcopy.table_results WHERE table_name = 'public.big'")
        rows = [r[0] for r in cur.fetchall()]
    conn.close()
    return rows


@pytest.mark.parametrize("side", ["source", "target"])
def test_cut_mid_copy_leaves_target_unchanged(side: str, dbs, proxies, tmp_path) -> None:
    """--retries 0: the table fails naming the side, the target table is as it was."""
    old, _new = _setup(dbs)
    code, w, events, _proxy = _run_cut(side, 0, dbs, proxies, tmp_path)
    assert code == 1, w.stderr
    failed = [e for e in events if e["event"] == "table_failed"]
    assert [e["table"] for e in failed] == ["public.big"]
    assert side in failed[0]["error"], failed[0]["error"]
    assert "public.big failed" in w.stderr and side in w.stderr
    assert table_checksum(dbs.target.dsn, "public.big") == old
    assert events[-1]["status"] == "failed" and events[-1]["failed_tables"] == ["public.big"]
    assert _ledger_status(dbs) == ["failed"]


@pytest.mark.parametrize("side", ["source", "target"])
def test_cut_mid_copy_says_connection_lost(side: str, dbs, proxies, tmp_path) -> None:
    _setup(dbs)
    _code, w, events, _proxy = _run_cut(side, 0, dbs, proxies, tmp_path)
    error = [e for e in events if e["event"] == "table_failed"][0]["error"]
    assert f"the connection to the {side} was lost" in error, error


@pytest.mark.parametrize("side", ["source", "target"])
def test_cut_mid_copy_is_retried(side: str, dbs, proxies, tmp_path) -> None:
    """--retries 1: a warning names the side, the second try copies the table."""
    _old, new = _setup(dbs)
    code, w, events, proxy = _run_cut(side, 1, dbs, proxies, tmp_path)
    assert proxy.cut_done == 1
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert code == 0, w.stderr
    assert any(f"connection to the {side} was lost" in m and "retrying (1/1)" in m
               for m in warnings), warnings
    copied = [e for e in events if e["event"] == "table_copied" and e["table"] == "public.big"]
    assert copied and copied[0]["attempts"] == 2
    assert table_checksum(dbs.target.dsn, "public.big") == new
    assert _ledger_status(dbs) == ["copied"]


def test_connection_cut_then_source_gone(dbs, proxies, tmp_path) -> None:
    """Every source connection dies (cut, and no server behind the proxy for the retry): the
    table fails naming the source, after the configured retries, and the target is unchanged."""
    old, _new = _setup(dbs)
    proxy = proxies(unix_socket_of(dbs.source.dsn), cut_after=CUT_AFTER, direction="down",
                    cuts=10)
    w = Worker(["copy", "--source", with_password(proxy.dsn(dbs.source.dsn)),
                "--target", with_password(dbs.target.dsn), "--tables", "public.big",
                "--retries", "1", "--run-id", "cut-twice"], tmp_path / "w")
    code = w.wait(120)
    check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    assert code == 1
    assert proxy.cut_done == 2  # the first try and the one retry
    failed = [e for e in w.events if e["event"] == "table_failed"]
    assert "connection to the source was lost" in failed[0]["error"]
    assert failed[0]["attempts"] == 2
    assert table_checksum(dbs.target.dsn, "public.big") == old
    assert staged_leftovers(dbs.target.dsn) == []


def _crash_target_mid_copy(dbs, pw_server, proxies, tmp_path):
    """Target on the password server; it crashes (immediate stop) while the worker's COPY
    streams into it, and comes back at once."""
    dbs.source.execute(SOURCE_SQL)
    tgt_db = pw_server.create_database(f"crash_{tmp_path.name[-12:].lower()}".replace("-", "_"))
    target = pw_server.uri(tgt_db)
    conn = psycopg2.connect(target)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(TARGET_SQL)
    conn.close()
    old = table_checksum(target, "public.big")
    new = table_checksum(dbs.source.dsn, "public.big")
    slow = proxies(unix_socket_of(dbs.source.dsn), delay=0.02, chunk=16384)
    w = Worker(["copy", "--source", with_password(slow.dsn(dbs.source.dsn)), "--target", target,
                "--tables", "public.big", "--retries", "2", "--run-id", "crash"],
               tmp_path / "crash")
    try:
        wait_for(lambda: w.proc.poll() is not None or any(
            s == "active" and "from stdin" in (q or "").lower()
            for _p, s, _w, q in backends(target, "nightcopy:crash")), 30, 0.01, "the COPY")
        assert w.proc.poll() is None, w.stderr
        pw_server.crash_and_restart()
        code = w.wait(120)
    finally:
        w.close()
    check_output(w.stdout, w.stderr, ledger_text(target))
    return code, w, target, old, new


def test_target_server_crash_mid_copy_table_old_or_new(dbs, pw_server, proxies,
                                                       tmp_path) -> None:
    """After crash recovery the table is the complete old or new version, nothing staged is
    left, and a table reported as copied really is the new version."""
    code, w, target, old, new = _crash_target_mid_copy(dbs, pw_server, proxies, tmp_path)
    state = table_checksum(target, "public.big")
    assert state in (old, new), "half-copied table after crash recovery"
    copied = [e for e in w.events if e["event"] == "table_copied"]
    if copied:
        assert state == new and copied[0]["attempts"] >= 2
    else:
        assert code == 1 and state == old
    assert staged_leftovers(target) == []


def test_target_server_crash_mid_copy_run_still_reports(dbs, pw_server, proxies,
                                                        tmp_path) -> None:
    """The run still ends with its summary (was an engine bug: the control connection to the
    target was not re-opened, 'internal error', no run_summary)."""
    code, w, _target, _old, _new = _crash_target_mid_copy(dbs, pw_server, proxies, tmp_path)
    assert "internal error" not in w.stderr, w.stderr
    assert w.events[-1]["event"] == "run_summary", w.stdout[-500:]
    copied = [e for e in w.events if e["event"] == "table_copied"]
    assert code == (0 if copied else 1)


def test_source_server_crash_mid_copy_retry_takes_new_snapshot(dbs, pw_server, proxies,
                                                                tmp_path) -> None:
    """The source server crashes mid-COPY and comes back: the exporter's snapshot is gone, so
    the retry reads from a new snapshot and says so; the table is copied whole."""
    src_db = pw_server.create_database(f"scrash_{tmp_path.name[-12:].lower()}".replace("-", "_"))
    source = pw_server.uri(src_db)
    conn = psycopg2.connect(source)
    conn.autocommit = True
    with conn.cursor() as cur:
        # larger than the socket buffers between the server and the proxy: the server is still
        # sending when it crashes
        cur.execute(SOURCE_SQL.replace("generate_series(1, 15000)", "generate_series(1, 80000)"))
    conn.close()
    dbs.target.execute(TARGET_SQL)
    slow = proxies(("127.0.0.1", pw_server.port), delay=0.02, chunk=65536)
    slow_source = f"postgresql://nc_app:{APP_PW}@127.0.0.1:{slow.port}/{src_db}"
    w = Worker(["copy", "--source", slow_source, "--target", with_password(dbs.target.dsn),
                "--tables", "public.big", "--retries", "2", "--run-id", "scrash"],
               tmp_path / "scrash")
    try:
        wait_for(lambda: w.proc.poll() is not None or any(
            s == "active" and "from stdin" in (q or "").lower()
            for _p, s, _w, q in backends(dbs.target.dsn, "nightcopy:scrash")), 30, 0.01,
            "the COPY")
        assert w.proc.poll() is None, w.stderr
        pw_server.crash_and_restart()
        code = w.wait(120)
    finally:
        w.close()
    check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    assert code == 0, w.stderr
    warnings = [e["message"] for e in w.events if e["event"] == "warning"]
    assert any("connection to the source was lost" in m for m in warnings), warnings
    assert any("new snapshot" in m for m in warnings), warnings
    assert table_checksum(dbs.target.dsn, "public.big") == table_checksum(source, "public.big")
    assert staged_leftovers(dbs.target.dsn) == []


@pytest.mark.parametrize("side", ["source", "target"])
def test_retry_reimports_the_runs_snapshot(side: str, dbs, proxies, tmp_path) -> None:
    """--retries 1 after a cut while the exporter lives: the retry reads the same snapshot as
    the first try (a new source connection re-imports it), so rows committed on the source in
    between are not copied (every table of the invocation stays at one point in time)."""
    _old, at_snapshot = _setup(dbs)
    db = dbs.source if side == "source" else dbs.target
    proxy = proxies(unix_socket_of(db.dsn), cut_after=CUT_AFTER,
                    direction="down" if side == "source" else "up",
                    delay=0.05, chunk=16384)  # ~1 s of first try before the cut
    source = proxy.dsn(dbs.source.dsn) if side == "source" else dbs.source.dsn
    target = proxy.dsn(dbs.target.dsn) if side == "target" else dbs.target.dsn
    run_id = f"cut-same-snapshot-{side}"
    w = Worker(["copy", "--source", with_password(source), "--target", with_password(target),
                "--tables", "public.big, public.small", "--retries", "1", "--run-id", run_id],
               tmp_path / "w")
    try:
        wait_for(lambda: any("to stdout" in (q or "").lower() for _p, _s, _w, q in
                             backends(dbs.source.dsn, f"nightcopy:{run_id}")), 60, 0.01,
                 "the first try's COPY on the source")
        dbs.source.execute("INSERT INTO public.big SELECT g, 'after the snapshot' FROM "
                           "generate_series(100001, 100100) g")
        changed_at = time.time()
        code = w.wait(120)
    finally:
        w.close()
    check_output(w.stdout, w.stderr, ledger_text(dbs.target.dsn))
    assert proxy.cut_done == 1
    retry = [e for e in w.events if e["event"] == "warning" and "retrying" in e["message"]]
    assert retry and retry[0]["ts"] > changed_at, "the source changed after the retry began"
    assert code == 0, w.stderr
    copied = [e for e in w.events if e["event"] == "table_copied" and e["table"] == "public.big"]
    assert copied and copied[0]["attempts"] == 2
    assert table_checksum(dbs.target.dsn, "public.big") == at_snapshot
    assert table_checksum(dbs.source.dsn, "public.big") != at_snapshot
    assert not [e for e in w.events if e["event"] == "warning" and "snapshot" in e["message"]]
