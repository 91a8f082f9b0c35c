"""The worker's report says whether a second attempt could succeed (`retryable`): the state
machine retries a FAILED/FAULT build once only when it is true. Real server errors, real runs."""

from __future__ import annotations

import json

import psycopg2
import pytest

from nightcopy.engine.invocation_report import is_transient, report_retryable


def _server_error(dsn: str, sqlstate: str) -> psycopg2.Error:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{sqlstate}'; END $$")
    except psycopg2.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("no error raised")


@pytest.mark.parametrize(("sqlstate", "transient"), [
    ("40001", True),   # serialization failure (also a standby's conflict with recovery)
    ("40P01", True),   # deadlock
    ("55P03", True),   # lock not available
    ("53300", True),   # too many connections
    ("57P01", True),   # the server is shutting down
    ("42P01", False),  # undefined table: the same the next time
    ("42501", False),  # missing privilege
    ("23505", False),  # a unique violation in the data
    ("57014", False),  # statement_timeout: the next attempt takes as long
])
def test_server_errors_are_classified(dbs, sqlstate, transient):
    assert is_transient(_server_error(dbs.target.dsn, sqlstate)) is transient


def test_a_lost_connection_is_transient():
    try:
        psycopg2.connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    except psycopg2.OperationalError as exc:
        assert is_transient(exc)


def test_retryable_needs_failures_and_every_one_transient():
    assert report_retryable([]) is False  # nothing failed: nothing to retry
    assert report_retryable([True, True]) is True
    assert report_retryable([True, False]) is False  # one refusal fails the retry again


def test_a_refused_table_reports_not_retryable(dbs, cli, tmp_path):
    dbs.source.execute("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
    dbs.target.execute("CREATE VIEW public.t AS SELECT 1 AS id")
    result = cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
                  "public.t", "--run-id", "r1", "--group", "g", "--report-uri",
                  f"file://{tmp_path}"])
    assert result.returncode == 1
    report = json.loads((tmp_path / "r1" / "g.json").read_text())
    assert report["retryable"] is False and report["schema_version"] == 2


def test_a_table_locked_past_every_attempt_reports_retryable(dbs, cli, tmp_path):
    """A reader holding the target table past the lock attempts: the same build tomorrow, or in
    a minute, copies it."""
    dbs.source.execute("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
    args = ["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
            "public.t", "--group", "g", "--report-uri", f"file://{tmp_path}", "--retries", "0",
            "--lock-timeout", "0.05", "--lock-attempts", "1", "--strategy", "truncate"]
    assert cli([*args, "--run-id", "r0"]).returncode == 0
    holder = psycopg2.connect(dbs.target.dsn)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN; LOCK TABLE public.t IN ACCESS SHARE MODE")
        result = cli([*args, "--run-id", "r1"])
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1, result.stderr
    report = json.loads((tmp_path / "r1" / "g.json").read_text())
    assert report["failed_tables"] == ["public.t"], report
    assert report["retryable"] is True, report["results"]
