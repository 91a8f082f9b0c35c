"""Issue 12, "Denial of service and paths", "Row data in messages", "Passwords on the command
line".

The promises: table-list matching is linear time; group names and run ids are restricted to
[A-Za-z0-9_-]{1,80} with the usual clear error (so they cannot steer the report outside its
location); row values from PostgreSQL's DETAIL lines reach neither the JSON events, the ledger,
the report (hence Slack) nor stderr unless NIGHTCOPY_DEBUG is set; a password given on the
command line gets a warning pointing to the environment, .pgpass or SSM.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import psycopg2.extensions
import pytest

from tests.conftest import run_cli
from tests.security.conftest import World

# A row value of the source that must stay in the databases.
ROW_SECRET = "ssn-987-65-4320"


def _orders(w: World) -> None:
    w.attacker_db.execute("CREATE TABLE app.orders (id int PRIMARY KEY); "
                          "INSERT INTO app.orders VALUES (1);")


def _json_files_outside(root: Path, inside: Path) -> list[Path]:
    return [p for p in root.rglob("*.json") if inside not in p.parents]


def _short_clear_error(result, word: str) -> None:
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and any(word in line for line in lines), result.stderr
    assert len(lines) <= 3, result.stderr


@pytest.mark.parametrize(("flag", "value", "word"), [
    ("--group", "../../escaped", "group"), ("--run-id", "../escaped", "run")])
def test_names_cannot_write_the_report_outside_its_location(world: World, flag, value, word):
    """`--group ../../escaped` and `--run-id ../escaped` must be refused with a short clear
    error (group names and run ids are [A-Za-z0-9_-]{1,80}) and must not write a report outside
    the --report-uri location."""
    w = world
    _orders(w)
    result = w.copy("app.orders", flag, value)
    assert _json_files_outside(w.tmp, w.report_dir) == [], "a report was written outside"
    _short_clear_error(result, word)


def test_ordinary_group_names_and_run_ids_still_work(world: World):
    """What the fix must keep (holds today): names like `g1`/`sales_eu-2` and run ids like
    `nightly-2026-12-03-r2` are accepted, and the report lands at RUN_ID/GROUP.json."""
    w = world
    _orders(w)
    result = w.copy("app.orders", "--group", "sales_eu-2", "--run-id", "nightly-2026-12-03-r2")
    assert result.returncode == 0, result.stderr
    assert (w.report_dir / "nightly-2026-12-03-r2" / "sales_eu-2.json").is_file()


def test_glob_matching_is_linear_time(world: World):
    """`app.*a*a*a*a*a*a*a*a*b` against a 63-character table name must be answered (no table
    matches: exit 1) in the time of an ordinary run, not the minutes a backtracking matcher
    takes (about 95 s on the code before the fix). The bound (10 s against about 1 s for an
    ordinary run here) leaves room for a loaded CI box."""
    w = world
    w.attacker_db.execute(f"CREATE TABLE app.{'a' * 63} (id int)")
    started = time.monotonic()
    try:
        result = w.copy("app.*a*a*a*a*a*a*a*a*b", timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"glob matching took over {time.monotonic() - started:.0f} s")
    assert result.returncode == 1, result.stderr
    assert "matches no table" in result.stderr, result.stderr


def _assert_row_values_stay_in_the_databases(w: World, result) -> None:
    assert result.returncode == 1, result.stderr
    assert result.events_of("table_failed"), result.stdout
    for what, text in (("the JSON events", result.stdout), ("stderr", result.stderr),
                       ("the ledger", w.ledger_text()), ("the report", w.reports_text())):
        assert ROW_SECRET not in text, f"a row value from a DETAIL line reached {what}"


def test_failing_row_detail_never_reaches_events_ledger_or_report(world: World):
    """A CHECK the target table carries (kept by --strategy truncate, which loads in place) that
    a source row breaks: PostgreSQL's DETAIL "Failing row contains (...)" quotes the row, and no
    value of it may reach the JSON events, stderr, the ledger or the report (NIGHTCOPY_DEBUG
    unset). (A source CHECK added NOT VALID no longer serves: it stays NOT VALID on the target
    and never rejects the rows the source holds.)"""
    w = world
    w.attacker_db.execute("""
        CREATE TABLE app.people (id int PRIMARY KEY, ssn text);
        INSERT INTO app.people VALUES (1, 'xxx-masked');""")
    first = w.copy("app.people")
    assert first.returncode == 0, first.stderr
    w.as_worker_on_target().execute(
        "ALTER TABLE app.people ADD CONSTRAINT ssn_masked CHECK (ssn LIKE 'xxx%')")
    w.attacker_db.execute(f"INSERT INTO app.people VALUES (2, '{ROW_SECRET}')")
    result = w.copy("app.people", "--strategy", "truncate")
    _assert_row_values_stay_in_the_databases(w, result)


def test_duplicate_key_detail_never_reaches_events_ledger_or_report(world: World):
    """A target-only unique index (kept by the swap) that the source's rows violate makes
    PostgreSQL's DETAIL quote the key, "Key (email)=(...) is duplicated": no value of it may
    reach the JSON events, stderr, the ledger or the report (NIGHTCOPY_DEBUG unset)."""
    w = world
    w.attacker_db.execute("CREATE TABLE app.people (id int PRIMARY KEY, email text); "
                          "INSERT INTO app.people VALUES (1, 'a@x');")
    first = w.copy("app.people")
    assert first.returncode == 0, first.stderr
    w.as_worker_on_target().execute(
        "CREATE UNIQUE INDEX people_email_key ON app.people (email)")
    w.attacker_db.execute(f"INSERT INTO app.people VALUES (2, '{ROW_SECRET}'), "
                          f"(3, '{ROW_SECRET}')")
    result = w.copy("app.people")
    _assert_row_values_stay_in_the_databases(w, result)


_PASSWORD = "pw-on-the-command-line-42"
_POINTERS = re.compile(r"NIGHTCOPY_(SOURCE|TARGET)_DSN|\.pgpass|SSM|environment", re.I)


def _with_password(dsn: str) -> str:
    return psycopg2.extensions.make_dsn(dsn, password=_PASSWORD)


def test_password_on_the_command_line_gets_a_warning(world: World):
    """--source/--target DSNs holding a password (the test servers ignore it) must draw a
    warning on stderr pointing to the environment, .pgpass or SSM; the password itself is
    never printed."""
    w = world
    _orders(w)
    result = run_cli(["copy", "--tables", "app.orders", "--source",
                      _with_password(w.worker_source_dsn), "--target",
                      _with_password(w.worker_target_dsn)], timeout=120)
    assert result.returncode == 0, result.stderr
    assert _PASSWORD not in result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines()
                if "password" in line.lower() and _POINTERS.search(line)]
    assert warnings, f"no warning about the password on the command line: {result.stderr!r}"


def test_password_in_the_environment_gets_no_warning(world: World):
    """What the fix must keep (holds today): a password given through NIGHTCOPY_*_DSN draws no
    warning, and is never printed."""
    w = world
    _orders(w)
    result = w.copy("app.orders", env={
        "NIGHTCOPY_SOURCE_DSN": _with_password(w.worker_source_dsn),
        "NIGHTCOPY_TARGET_DSN": _with_password(w.worker_target_dsn)})
    assert result.returncode == 0, result.stderr
    assert _PASSWORD not in result.stdout + result.stderr
    assert "password" not in result.stderr.lower(), result.stderr


def test_validate_names_an_existing_group_whose_name_does_not_fit(world: World):
    """A config already holding a group named `../../escaped` (accepted before the rule): `nightcopy
    validate` must exit 1 and name that group on a problem line, so operators rename it before
    the upgrade refuses to run it."""
    w = world
    _orders(w)
    w.attacker_db.execute("CREATE TABLE app.items (id int)")
    config = w.tmp / "nightcopy.toml"
    config.write_text(
        f"source_dsn = {json.dumps(w.worker_source_dsn)}\n"
        f"target_dsn = {json.dumps(w.worker_target_dsn)}\n"
        '[[groups]]\nname = "ok_group"\ntables = ["app.orders"]\n'
        '[[groups]]\nname = "../../escaped"\ntables = ["app.items"]\n')
    result = run_cli(["validate", "--config", str(config), "--no-slack"], timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert any("../../escaped" in line for line in problems), result.stdout
    assert not any("ok_group" in line for line in problems), result.stdout
