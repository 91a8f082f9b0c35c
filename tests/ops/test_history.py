"""`nightcopy history` and `nightcopy timings` over a ledger written as the worker writes it."""

from __future__ import annotations

import json

import pytest

from nightcopy.engine.ledger import ensure_ledger

# run id -> group -> (start, finish, [(table, status, seconds, error)])
NIGHTS = {
    "nightly-2026-11-24": {
        "g1": ("02:00:00", "02:10:00", [("public.a", "copied", 400, None),
                                        ("public.b", "copied", 200, None)]),
        "g2": ("02:00:00", "02:25:00", [("public.c", "copied", 900, None),
                                        ("public.d", "copied", 600, None)]),
    },
    "nightly-2026-11-25": {
        "g1": ("02:00:00", "02:20:00", [("public.a", "copied", 800, None),
                                        ("public.b", "copied", 400, None)]),
        "g2": ("02:00:00", "02:15:00", [("public.c", "copied", 500, None),
                                        ("public.d", "copied", 400, None),
                                        ('public."E v"', "failed", 3, "boom: disk full")]),
    },
}


def _seconds(clock: str) -> int:
    h, m, s = (int(part) for part in clock.split(":"))
    return 3600 * h + 60 * m + s


def _error_lines(stderr: str) -> int:
    """Lines of stderr besides the warning a password on the command line earns (these tests
    pass one on purpose, to show it never leaks): the error itself must be one line."""
    lines = stderr.strip().splitlines()
    assert any("DSN holds a password" in line for line in lines), stderr
    return len([line for line in lines if "DSN holds a password" not in line])


@pytest.fixture
def ledger(dbs, with_password):
    conn = dbs.target.connect()
    conn.autocommit = False
    ensure_ledger(conn)
    with conn.cursor() as cur:
        for run_id, groups in NIGHTS.items():
            day = run_id[len("nightly-"):]
            for group, (start, finish, tables) in groups.items():
                failed = sum(1 for t in tables if t[1] == "failed")
                cur.execute(
                    """INSERT INTO nightcopy.invocations (run_id, group_name, status, started_at,
                           finished_at, tables, failed, rows, bytes, seconds)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, 1000, 1000000, %s)""",
                    (run_id, group, "failed" if failed else "succeeded", f"{day} {start}+00",
                     f"{day} {finish}+00", len(tables), failed, _seconds(finish) - _seconds(start)))
                clock = 0
                for table, status, seconds, error in tables:
                    clock += seconds
                    cur.execute(
                        """INSERT INTO nightcopy.table_results (run_id, table_name, group_name,
                               status, rows, bytes, seconds, copy_seconds, index_seconds, error,
                               started_at, finished_at)
                           VALUES (%s, %s, %s, %s, 500, 500000, %s, %s, 1, %s,
                                   %s::timestamptz + make_interval(secs => %s),
                                   %s::timestamptz + make_interval(secs => %s))""",
                        (run_id, table, group, status, seconds, seconds - 1, error,
                         f"{day} {start}+00", clock - seconds, f"{day} {start}+00", clock))
    conn.commit()
    conn.close()
    return with_password(dbs.target.dsn)


def order_of(text: str, names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: text.index(n))


def test_timings_latest_run_slowest_first_with_critical_path(nc, ledger):
    r = nc("timings", "--target", ledger)
    assert r.exit_code == 0, r.text
    out = r.stdout
    assert "Run nightly-2026-11-25" in out
    tables_part = out[out.index("Tables, slowest first"):]
    assert order_of(tables_part, ["public.a ", "public.c ", "public.b ", "public.d "]) == [
        "public.a ", "public.c ", "public.b ", "public.d "]
    assert "Critical path: group g1 finished last at +20m00s: public.a 13m20s, public.b 6m40s" in out
    assert 'failed: public."E v": boom: disk full' in out
    assert "s3cr3t-pw" not in r.text


def test_timings_of_a_given_run_and_unknown_run(nc, ledger):
    r = nc("timings", "--target", ledger, "--run-id", "nightly-2026-11-24")
    assert r.exit_code == 0, r.text
    assert "Critical path: group g2 finished last at +25m00s" in r.stdout
    r = nc("timings", "--target", ledger, "--run-id", "nightly-1999-01-01")
    assert r.exit_code == 1
    assert "run 'nightly-1999-01-01' is not in the ledger" in r.stderr
    assert _error_lines(r.stderr) == 1 and "s3cr3t-pw" not in r.text


def test_history_lists_runs_with_critical_paths_and_tables_by_average(nc, ledger):
    r = nc("history", "--target", ledger, "--nights", "7")
    assert r.exit_code == 0, r.text
    out = r.stdout
    runs_part = out[:out.index("Tables, slowest first")]
    assert runs_part.index("nightly-2026-11-25") < runs_part.index("nightly-2026-11-24")
    line_25 = next(line for line in runs_part.splitlines() if "nightly-2026-11-25" in line)
    line_24 = next(line for line in runs_part.splitlines() if "nightly-2026-11-24" in line)
    assert "failed" in line_25 and "g1 (20m00s)" in line_25 and "20m00s" in line_25
    assert "succeeded" in line_24 and "g2 (25m00s)" in line_24
    tables_part = out[out.index("Tables, slowest first"):]
    # averages: c 700 s, a 600 s, d 500 s, b 300 s
    assert order_of(tables_part, ["public.a", "public.b", "public.c", "public.d"]) == [
        "public.c", "public.a", "public.d", "public.b"]
    r = nc("history", "--target", ledger, "--nights", "1")
    assert "nightly-2026-11-24" not in r.stdout and "nightly-2026-11-25" in r.stdout


def test_history_without_ledger_is_one_clear_line(nc, dbs, with_password):
    r = nc("history", "--target", with_password(dbs.target.dsn))
    assert r.exit_code == 1
    assert "no run ledger in the target" in r.stderr
    assert _error_lines(r.stderr) == 1 and "s3cr3t-pw" not in r.text


def test_history_needs_a_target(nc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = nc("history")
    assert r.exit_code == 1 and "no target database" in r.stderr
    r = nc("timings", "--from-logs")
    assert r.exit_code == 2 and "--log-group" in r.stderr


def test_timings_and_history_as_json(nc, ledger):
    import json

    r = nc("timings", "--target", ledger, "--json")
    assert r.exit_code == 0, r.text
    data = json.loads(r.stdout)
    assert data["run_id"] == "nightly-2026-11-25" and data["critical_group"] == "g1"
    assert data["wall_seconds"] == 1200
    assert [t["table"] for t in data["tables"]][:2] == ["public.a", "public.c"]
    r = nc("history", "--target", ledger, "--json")
    data = json.loads(r.stdout)
    assert [run["run_id"] for run in data["runs"]] == ["nightly-2026-11-25", "nightly-2026-11-24"]
    assert data["tables"][0]["table"] == "public.c"


def assert_readable(out: str, width: int, words: list[str]) -> None:
    """Every line fits the terminal, nothing is cut to `cust…`, and each word is there whole."""
    too_wide = [line for line in out.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)
    assert "…" not in out, out
    missing = [w for w in words if w not in out]
    assert not missing, f"{missing} not in:\n{out}"


@pytest.mark.parametrize("columns", [80, 120])
def test_history_and_timings_stay_readable_at_80_and_120_columns(nc, ledger, columns):
    env = {"COLUMNS": str(columns)}
    r = nc("history", "--target", ledger, env=env)
    assert r.exit_code == 0, r.text
    assert_readable(r.stdout, columns, ["nightly-2026-11-25", "nightly-2026-11-24", "succeeded",
                                        "failed", "20m00s", "25m00s", "11m40s"])
    if columns == 120:
        assert "g1 (20m00s)" in r.stdout and "2,000" in r.stdout  # the wide layout keeps them
    else:
        assert "(left out at 80 columns: " in r.stdout  # and says what it left out
    r = nc("timings", "--target", ledger, env=env)
    assert r.exit_code == 0, r.text
    assert_readable(r.stdout, columns, ['public."E v"', "succeeded", "13m20s", "<- critical path",
                                        "500"])
    if columns == 120:
        assert "2026-11-25 02:20:00" in r.stdout and "MB/s" in r.stdout


def test_timings_shows_lock_waits_at_80_columns(nc, ledger, dbs):
    dbs.target.execute("UPDATE nightcopy.table_results SET lock_wait_seconds = 18 "
                       "WHERE run_id = 'nightly-2026-11-25' AND table_name = 'public.b'")
    r = nc("timings", "--target", ledger, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.text
    assert_readable(r.stdout, 80, ["lock wait", "18.0s"])
    line_b = next(line for line in r.stdout.splitlines() if "public.b" in line)
    assert "18.0s" in line_b
    assert "Lock waits: 1 table waited for the target's locks (longest public.b 18.0s)" in r.stdout


def test_an_interrupted_run_is_shown_as_such(nc, ledger, dbs):
    from nightcopy.engine.ledger import mark_interrupted

    dbs.target.execute("""INSERT INTO nightcopy.invocations (run_id, group_name, status,
                              started_at) VALUES ('nightly-2026-11-26', 'g1', 'running',
                              '2026-11-26 02:00:00+00')""")
    conn = dbs.target.connect()
    try:
        assert mark_interrupted(conn, "nightly-2026-11-26", {"g1": 4.0}) == 1
    finally:
        conn.close()
    r = nc("history", "--target", ledger)
    line = next(line for line in r.stdout.splitlines() if "nightly-2026-11-26" in line)
    assert "interrupted" in line and "running" not in r.stdout
    r = nc("timings", "--target", ledger, "--run-id", "nightly-2026-11-26")
    assert r.exit_code == 0, r.text
    assert "still running" not in r.stdout and "interrupted" in r.stdout
    assert "No table finished in this run." in r.stdout and "Tables, slowest" not in r.stdout
    assert "Critical path: group g1 finished last" in r.stdout


def test_history_lists_each_runs_schema_changes_at_80_columns(nc, dbs):
    """`history` shows what changed in the source definitions run by run, from the ledger's
    recorded definitions (the same phrases as the night's schema_changed events), folded."""
    import json

    dbs.source.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text, "
                       "total numeric); INSERT INTO public.orders VALUES (1, 'a', 2)")

    def night(run_id: str) -> None:
        r = nc("copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
               "public.orders", "--run-id", run_id)
        assert r.exit_code == 0, r.text

    night("drift-night-1")
    dbs.source.execute("ALTER TABLE public.orders DROP COLUMN note, "
                       "ADD COLUMN a_rather_long_column_name_for_the_sales_channel text")
    night("drift-night-2")
    night("drift-night-3")  # nothing changed: nothing said
    r = nc("history", "--target", dbs.target.dsn, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.text
    section = r.stdout[r.stdout.index("Schema changes on the source"):]
    assert all(len(line) <= 80 for line in section.splitlines()), section
    flat = section.replace("\n", "")
    assert ("drift-night-2 public.orders: column "
            "a_rather_long_column_name_for_the_sales_channel added (text); column note "
            "dropped") in flat
    assert "drift-night-3" not in section and "drift-night-1" not in section
    data = json.loads(nc("history", "--target", dbs.target.dsn, "--json").stdout)
    assert data["schema_changes"] == [{
        "run_id": "drift-night-2", "table": "public.orders",
        "changes": ["column a_rather_long_column_name_for_the_sales_channel added (text)",
                    "column note dropped"]}]


def test_a_run_killed_without_a_word_is_shown_interrupted(nc, ledger, dbs):
    """A worker killed with -9 leaves its invocation `running` in the ledger; with no session
    of that run left on the target (application_name nightcopy:RUN_ID), history and timings
    show it interrupted. While a session of the run is there, it is running."""
    import psycopg2

    dbs.target.execute("""INSERT INTO nightcopy.invocations (run_id, group_name, status,
                              started_at) VALUES ('nightly-2026-11-27', 'g1', 'running',
                              now() - interval '1 hour')""")

    def status_line() -> str:
        r = nc("history", "--target", ledger)
        assert r.exit_code == 0, r.text
        return next((line for line in r.stdout.splitlines() if "nightly-2026-11-27" in line),
                    r.stdout)

    assert "interrupted" in status_line()
    t = nc("timings", "--target", ledger, "--run-id", "nightly-2026-11-27")
    assert "interrupted" in t.stdout and "still running" not in t.stdout
    alive = psycopg2.connect(dbs.target.dsn, application_name="nightcopy:nightly-2026-11-27")
    try:
        assert "running" in status_line() and "interrupted" not in status_line()
    finally:
        alive.close()
    assert dbs.target.scalar("SELECT status FROM nightcopy.invocations WHERE run_id = "
                             "'nightly-2026-11-27'") == "running"  # history writes nothing


def test_a_resumed_group_shows_work_time_apart_from_wall_time(nc, cli, dbs):
    """The first attempt fails a table; the resume, 2 hours later, copies it. The group's work
    is the two workers' own seconds; the gap between them is in its wall-clock time only (it
    read "44.6s" for a 3.4 s copy)."""
    dbs.source.execute("CREATE TABLE public.a (id int); CREATE TABLE public.b (id int);"
                       "INSERT INTO public.a SELECT generate_series(1, 100)")
    env = {"NIGHTCOPY_SOURCE_DSN": dbs.source.dsn, "NIGHTCOPY_TARGET_DSN": dbs.target.dsn}
    # public.b is refused on the first attempt: an existing target table a glob matches only
    dbs.target.execute("CREATE TABLE public.b (id int)")
    first = cli(["copy", "-t", "public.*", "--group", "g1", "--run-id", "r-resume"], env=env)
    assert first.returncode == 1
    dbs.target.execute("DROP TABLE public.b; UPDATE nightcopy.invocations "
                       "SET started_at = started_at - interval '2 hours'")
    second = cli(["copy", "-t", "public.*", "--group", "g1", "--run-id", "r-resume"], env=env)
    assert second.returncode == 0, second.stderr
    worked = sum(r.events_of("run_summary")[0]["seconds"] for r in (first, second))
    shown = nc("timings", "--target", dbs.target.dsn, "--run-id", "r-resume", "--json")
    group = json.loads(shown.stdout)["groups"][0]
    assert group["work_seconds"] == pytest.approx(worked, abs=0.01)
    assert group["seconds"] > 7200
    table = nc("timings", "--target", dbs.target.dsn, "--run-id", "r-resume",
               env={"COLUMNS": "80"})
    assert "resumed: the gap between attempts is in wall only" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
