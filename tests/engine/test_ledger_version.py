"""A ledger newer than this release knows (an older pinned release against a database a newer
one upgraded) is refused with one line, before anything is written."""

from __future__ import annotations

import json

import pytest

from nightcopy.engine.ledger import LEDGER_VERSION
from tests.engine.conftest import SOURCE

NEWER = LEDGER_VERSION + 1


@pytest.fixture
def newer_ledger(cli, dbs):
    """A target whose ledger a future release (version LEDGER_VERSION + 1) has taken over."""
    dbs.source.execute(SOURCE)
    r = cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
             "public.a", "--run-id", "night-1"])
    assert r.returncode == 0, r.stderr
    dbs.target.execute("UPDATE nightcopy.meta SET value = %s WHERE key = 'schema_version'",
                       (str(NEWER),))
    return dbs


def _refusal(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert f"is version {NEWER}" in line and f"up to {LEDGER_VERSION}" in line, line
    assert "upgrade this nightcopy" in line and "Traceback" not in stderr
    return line


def test_a_worker_refuses_a_newer_ledger_before_writing_anything(cli, newer_ledger):
    dbs = newer_ledger
    before = dbs.target.query("SELECT * FROM nightcopy.invocations")
    r = cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
             "public.a, public.b", "--run-id", "night-2"])
    assert r.returncode == 1 and r.stdout == ""
    _refusal(r.stderr)
    assert dbs.target.scalar("SELECT to_regclass('public.b')") is None
    assert dbs.target.query("SELECT * FROM nightcopy.invocations") == before
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.table_results") == 1


@pytest.mark.parametrize("command", [["history"], ["timings"]])
def test_history_and_timings_refuse_a_newer_ledger(cli, newer_ledger, command):
    r = cli([*command, "--target", newer_ledger.target.dsn])
    assert r.returncode == 1 and r.stdout == ""
    _refusal(r.stderr)


def test_plan_refuses_a_newer_ledger(cli, newer_ledger, tmp_path):
    cfg = tmp_path / "nightcopy.toml"
    cfg.write_text(f"source_dsn = {json.dumps(newer_ledger.source.dsn)}\n"
                   f"target_dsn = {json.dumps(newer_ledger.target.dsn)}\n"
                   '[[groups]]\nname = "g1"\ntables = ["public.a", "public.b"]\n')
    r = cli(["plan", "--config", str(cfg), "--groups", "1"])
    assert r.returncode == 1 and r.stdout == ""
    _refusal(r.stderr)
