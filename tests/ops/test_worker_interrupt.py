"""A worker stopped with SIGTERM (CodeBuild stopping a build, `nightcopy run` stopping its
workers) mid-run: it records the run interrupted, says how to resume, ends with a run_summary,
and leaves every table it did not finish as it was (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg2


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_sigterm_mid_run_records_interrupted_and_ends_with_a_run_summary(cli, dbs):
    dbs.source.execute("CREATE TABLE public.a (id int); CREATE TABLE public.b (id int);"
                       "INSERT INTO public.a SELECT generate_series(1, 10);"
                       "INSERT INTO public.b SELECT generate_series(1, 10)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")},
           "NIGHTCOPY_SOURCE_DSN": dbs.source.dsn, "NIGHTCOPY_TARGET_DSN": dbs.target.dsn}
    first = cli(["copy", "-t", "public.a, public.b", "--run-id", "night-1"], env=env)
    assert first.returncode == 0, first.stderr
    dbs.source.execute("INSERT INTO public.b SELECT generate_series(11, 30)")
    # A reader holds public.b: tonight's swap of it waits for the lock (6 tries of 2 s). Both
    # tables are one page, so with -j 1 they go in list order: public.a is copied first.
    reader = psycopg2.connect(dbs.target.dsn)
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.b")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nightcopy", "copy", "-t", "public.a, public.b", "--group",
             "g1", "--run-id", "night-2", "-j", "1"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not dbs.target.scalar(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
                "'public.b'::regclass"):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        reader.rollback()
        reader.close()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "rerun with --run-id night-2" in err, err
    last = _events(out)[-1]
    assert last["event"] == "run_summary" and last["interrupted"] is True, out
    assert last["failed_tables"] == ["public.b"] and last["status"] == "failed"
    assert dbs.target.scalar("SELECT status FROM nightcopy.invocations WHERE run_id = "
                             "'night-2'") == "interrupted"
    assert dbs.target.scalar("SELECT count(*) FROM public.b") == 10  # last night's rows
    # The resume copies what is left.
    again = cli(["copy", "-t", "public.a, public.b", "--group", "g1", "--run-id", "night-2"],
                env=env)
    assert again.returncode == 0, again.stderr
    assert [e["table"] for e in again.events_of("table_copied")] == ["public.b"]
    assert dbs.target.scalar("SELECT count(*) FROM public.b") == 30
