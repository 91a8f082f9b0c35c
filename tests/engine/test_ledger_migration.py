"""A version-1 ledger (created by nightcopy 0.1.0, with rows) upgrades in place the first time
a new worker meets it; history reads the old rows; a version-1 release keeps working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg2

from nightcopy.engine.ledger import LEDGER_VERSION, ensure_ledger
from tests.engine.conftest import SOURCE, V1_DDL, V1_ROWS, ledger_version


def copy(cli, dbs, tables: str, *extra: str):
    return cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
                tables, *extra])


def test_a_v1_ledger_is_upgraded_in_place_and_its_runs_resume_and_read_back(cli, v1_ledger):
    dbs = v1_ledger
    # night-1 was killed after public.a: the new worker resumes it from the v1 rows.
    r = copy(cli, dbs, "public.a, public.b", "--group", "g1", "--run-id", "night-1")
    assert r.returncode == 0, r.stderr
    assert [e["table"] for e in r.events_of("table_skipped")] == ["public.a"]
    assert [e["table"] for e in r.events_of("table_copied")] == ["public.b"]
    assert ledger_version(dbs.target) == LEDGER_VERSION == 4
    assert dbs.target.query("SELECT c.relname, c.relkind::text FROM pg_class c JOIN "
                            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
                            "'nightcopy' AND c.relkind IN ('r', 'v') ORDER BY 1") == [
        ("copied_functions", "r"), ("invocations", "r"), ("managed_tables", "r"), ("meta", "r"),
        ("runs", "v"), ("table_definitions", "r"), ("table_results", "r")]
    assert dbs.target.query("SELECT run_id, status, host, tables FROM nightcopy.invocations "
                            "ORDER BY run_id") == [
        ("night-0", "succeeded", "old-host", 2), ("night-1", "succeeded", "old-host", 2)]
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.table_results") == 4

    history = cli(["history", "--target", dbs.target.dsn, "--json"])
    assert history.returncode == 0, history.stderr
    runs = json.loads(history.stdout)["runs"]
    assert [(r["run_id"], r["status"], r["tables"]) for r in runs] == [
        ("night-1", "succeeded", 2), ("night-0", "succeeded", 2)]
    timings = cli(["timings", "--target", dbs.target.dsn, "--run-id", "night-0", "--json"])
    assert timings.returncode == 0, timings.stderr
    assert [t["table"] for t in json.loads(timings.stdout)["tables"]] == ["public.a", "public.b"]


def test_readers_read_a_v1_ledger_without_changing_it(cli, v1_ledger):
    r = cli(["timings", "--target", v1_ledger.target.dsn, "--json"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["run_id"] == "night-1"
    assert ledger_version(v1_ledger.target) == 1
    assert v1_ledger.target.scalar("SELECT to_regclass('nightcopy.invocations')") is None


def test_a_failed_upgrade_leaves_the_v1_ledger_as_it_was(cli, v1_ledger):
    dbs = v1_ledger
    dbs.target.execute("CREATE TABLE nightcopy.invocations (x int)")  # in the rename's way
    r = copy(cli, dbs, "public.b", "--group", "g1", "--run-id", "night-2")
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot upgrade the ledger" in lines[0], r.stderr
    assert "from version 1 to 4" in lines[0] and "Traceback" not in r.stderr
    assert ledger_version(dbs.target) == 1
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.runs") == 2
    assert dbs.target.scalar("SELECT to_regclass('public.b')") is None  # nothing copied


def test_two_workers_meeting_a_v1_ledger_upgrade_it_once(v1_ledger):
    dbs = v1_ledger
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    procs = [subprocess.Popen([sys.executable, "-m", "nightcopy", "copy", "--source",
                               dbs.source.dsn, "--target", dbs.target.dsn, "--tables", table,
                               "--group", group, "--run-id", "night-2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for table, group in (("public.a", "g1"), ("public.b", "g2"))]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert ledger_version(dbs.target) == LEDGER_VERSION
    assert dbs.target.query("SELECT group_name, status FROM nightcopy.invocations WHERE "
                            "run_id = 'night-2' ORDER BY 1") == [("g1", "succeeded"),
                                                                ("g2", "succeeded")]


def test_a_release_knowing_only_v1_still_writes_through_the_runs_view(cli, v1_ledger):
    dbs = v1_ledger
    assert copy(cli, dbs, "public.a", "--run-id", "night-2").returncode == 0
    # nightcopy 0.1.0's start_run and finish_run, verbatim.
    dbs.target.execute(
        """INSERT INTO nightcopy.runs
                    (run_id, group_name, status, host, nightcopy_version, options)
                VALUES (%s, %s, 'running', %s, %s, %s)
                ON CONFLICT (run_id, group_name) DO UPDATE
                   SET status = 'running', finished_at = NULL""",
        ("night-3", "g9", "old-host", "0.1.0", "{}"))
    dbs.target.execute(
        """UPDATE nightcopy.runs
                   SET status = %s, finished_at = now(), tables = %s, failed = %s,
                       rows = %s, bytes = %s, seconds = %s
                 WHERE run_id = %s AND group_name = %s""",
        ("succeeded", 1, 0, 10, 100, 1.0, "night-3", "g9"))
    assert dbs.target.query("SELECT status, tables FROM nightcopy.invocations WHERE run_id = "
                            "'night-3'") == [("succeeded", 1)]


def _shape(dsn: str) -> dict:
    """Everything about schema nightcopy that code relies on (not the rows)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            out = {}
            for name, sql in {
                "columns": "SELECT table_name, ordinal_position, column_name, data_type, "
                           "is_nullable, column_default FROM information_schema.columns "
                           "WHERE table_schema = 'nightcopy' ORDER BY 1, 2",
                "constraints": "SELECT conrelid::regclass::text, conname, "
                               "pg_get_constraintdef(oid) FROM pg_constraint WHERE "
                               "connamespace = 'nightcopy'::regnamespace ORDER BY 1, 2",
                "indexes": "SELECT indexname, indexdef FROM pg_indexes "
                           "WHERE schemaname = 'nightcopy' ORDER BY 1",
                "comments": "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM "
                            "pg_class c WHERE c.relnamespace = 'nightcopy'::regnamespace "
                            "AND c.relkind IN ('r', 'v') ORDER BY 1",
                "meta": "SELECT key, value FROM nightcopy.meta ORDER BY 1",
            }.items():
                cur.execute(sql)
                out[name] = cur.fetchall()
            return out
    finally:
        conn.close()


def test_a_migrated_ledger_has_the_shape_of_a_new_one(dbs, pg_servers):
    dbs.source.execute(SOURCE)
    dbs.target.execute(V1_DDL + V1_ROWS)
    conn = psycopg2.connect(dbs.target.dsn)
    ensure_ledger(conn)
    conn.close()
    fresh = f"fresh_{uuid.uuid4().hex[:12]}"
    fresh_dsn = pg_servers[1].create_database(fresh)
    try:
        conn = psycopg2.connect(fresh_dsn)
        ensure_ledger(conn)
        conn.close()
        assert _shape(dbs.target.dsn) == _shape(fresh_dsn)
    finally:
        pg_servers[1].drop_database(fresh)
