"""A hot standby (read replica) as the source: Debian's PostgreSQL 15, a primary and a streaming
standby made with pg_basebackup. The copy reads the standby in one exported snapshot; with
hot_standby_feedback off it warns up front that the primary's cleanup can cancel it, and when
that happens (a recovery conflict ends the snapshot) the table is retried from a new snapshot,
saying why. The summary and the report give the snapshot's age (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg2
import pytest

from tests.engine.pg15 import pg15, pg15_cluster, start, stop


def _sql(dsn: str, sql: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def replica(pg_servers) -> Iterator[tuple[str, str]]:
    """(primary DSN, standby DSN) of database `shop`: the standby cancels a conflicting query at
    once (max_standby_streaming_delay 0) and sends no feedback."""
    with pg15_cluster("nightcopy-replica-", "-p 5601") as base:
        _sql(f"host={base} port=5601 user=postgres dbname=postgres", "CREATE DATABASE shop")
        standby = base / "standby"
        pg15("pg_basebackup", "-h", str(base), "-p", "5601", "-U", "postgres", "-D",
             str(standby), "-R", "--checkpoint=fast")
        start(standby, base, "-p 5602 -c hot_standby_feedback=off "
                             "-c max_standby_streaming_delay=0")
        try:
            yield (f"host={base} port=5601 user=postgres dbname=shop",
                   f"host={base} port=5602 user=postgres dbname=shop")
        finally:
            stop(standby)


def _replayed(primary: str, standby: str) -> None:
    """Wait until the standby has replayed everything the primary wrote so far."""
    lsn = _sql(primary, "SELECT pg_current_wal_lsn()")[0][0]
    deadline = time.monotonic() + 30
    while _sql(standby, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'")[0][0] is not True:
        assert time.monotonic() < deadline, "the standby does not replay"
        time.sleep(0.05)


def _env(source: str, target: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    return {**env, "NIGHTCOPY_SOURCE_DSN": source, "NIGHTCOPY_TARGET_DSN": target}


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_copy_from_a_read_replica_warns_and_reports_the_snapshot_age(replica, dbs, cli,
                                                                       tmp_path):
    primary, standby = replica
    _sql(primary, "DROP TABLE IF EXISTS public.r; CREATE TABLE public.r (id int PRIMARY KEY); "
                  "INSERT INTO public.r SELECT generate_series(1, 100)")
    _replayed(primary, standby)
    result = cli(["copy", "-t", "public.r", "--group", "g", "--run-id", "replica-1",
                  "--report-uri", (tmp_path / "reports").as_uri()],
                 env=_env(standby, dbs.target.dsn))
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM public.r") == 100
    warning = " ".join(e["message"] for e in result.events_of("warning"))
    assert "hot standby with hot_standby_feedback off (max_standby_streaming_delay 0)" in warning
    assert "set hot_standby_feedback = on" in warning
    age = result.events_of("run_summary")[0]["snapshot_age_seconds"]
    assert 0 <= age < 600
    report = json.loads((tmp_path / "reports" / "replica-1" / "g.json").read_text())
    assert report["snapshot_age_seconds"] == age


def test_a_recovery_conflict_between_tables_retries_from_a_new_snapshot(replica, dbs, cli):
    """While the first table's swap waits for a reader's lock, the primary deletes rows of the
    second and vacuums them away: replaying that cleanup ends every session holding the old
    snapshot on the standby. The second table is then read from a new snapshot, with a warning
    naming the cause, and the night succeeds."""
    primary, standby = replica
    _sql(primary, "DROP TABLE IF EXISTS public.a, public.b; "
                  "CREATE TABLE public.a (id int PRIMARY KEY); "
                  "CREATE TABLE public.b (id int PRIMARY KEY); "
                  "INSERT INTO public.a SELECT generate_series(1, 100); "
                  "INSERT INTO public.b SELECT generate_series(1, 100)")
    _replayed(primary, standby)
    env = _env(standby, dbs.target.dsn)
    assert cli(["copy", "-t", "public.a, public.b"], env=env).returncode == 0
    reader = psycopg2.connect(dbs.target.dsn)
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.a")  # holds public.a until rollback
        proc = subprocess.Popen(
            [sys.executable, "-m", "nightcopy", "copy", "-t", "public.a, public.b", "-j", "1",
             "--lock-timeout", "0.5", "--lock-attempts", "30"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not dbs.target.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                    "relation = 'public.a'::regclass"):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.05)
        _sql(primary, "DELETE FROM public.b WHERE id > 50")
        _sql(primary, "VACUUM public.b")
        _replayed(primary, standby)
    finally:
        reader.rollback()
        reader.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    events = _events(out)
    assert [e["table"] for e in events if e["event"] == "table_copied"] == ["public.a",
                                                                            "public.b"]
    warnings = " ".join(e["message"] for e in events if e["event"] == "warning")
    assert "a recovery conflict ended it; set hot_standby_feedback = on" in warnings, warnings
    # public.a is last night's snapshot... and public.b the new snapshot's, after the delete
    assert dbs.target.scalar("SELECT count(*) FROM public.a") == 100
    assert dbs.target.scalar("SELECT count(*) FROM public.b") == 50
