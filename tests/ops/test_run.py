"""`nightcopy run`: all groups through the real worker processes, ledger, resume, Slack."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from nightcopy.ops.local_run import GroupState, worker_command

SOURCE = """
CREATE SCHEMA sales;
CREATE TABLE public.customers (id int PRIMARY KEY, name text);
INSERT INTO public.customers SELECT i, 'c' || i FROM generate_series(1, 500) i;
CREATE TABLE public."Order Items" (id int PRIMARY KEY, qty int);
INSERT INTO public."Order Items" SELECT i, i % 7 FROM generate_series(1, 2000) i;
CREATE TABLE sales.invoices (id int PRIMARY KEY, amount numeric);
INSERT INTO sales.invoices SELECT i, i * 1.5 FROM generate_series(1, 300) i;
CREATE TABLE sales.credits (id int PRIMARY KEY);
INSERT INTO sales.credits SELECT generate_series(1, 10);
"""
GROUPS = [{"name": "g1", "tables": ["public.customers", 'public."Order Items"']},
          {"name": "g2", "tables": ["sales.*"]}]


@pytest.fixture
def shop(dbs):
    dbs.source.execute(SOURCE)
    return dbs


def test_run_copies_every_group_and_records_the_ledger(nc, shop, tmp_path, write_config,
                                                       with_password):
    cfg = write_config(tmp_path / "nightcopy.toml", with_password(shop.source.dsn),
                       with_password(shop.target.dsn), GROUPS, options={"jobs": 1})
    r = nc("run", "--config", str(cfg), "--run-id", "test-run-1", "--parallel", "2",
           "--report-dir", str(tmp_path / "reports"))
    assert r.exit_code == 0, r.text
    report = json.loads((tmp_path / "reports" / "test-run-1" / "g2.json").read_text())
    assert report["status"] == "succeeded" and len(report["results"]) == 2
    assert (tmp_path / "reports" / "test-run-1" / "g1.log").exists()
    assert shop.target.scalar('SELECT count(*) FROM public."Order Items"') == 2000
    assert shop.target.scalar("SELECT sum(amount) FROM sales.invoices") == 67725
    assert shop.target.query(
        "SELECT group_name, status, tables FROM nightcopy.invocations WHERE run_id = 'test-run-1'"
        " ORDER BY 1") == [("g1", "succeeded", 2), ("g2", "succeeded", 2)]
    out = r.stdout
    # plain progress lines (not a terminal) and the summary table
    assert "[g1] copied public.\"Order Items\": 2,000 rows" in out
    assert "[g2] succeeded" in out
    summary = out[out.index("nightcopy run test-run-1"):]
    assert "2/2" in summary and "succeeded" in summary and "2,810" in summary
    assert "Critical path: group" in out
    assert "s3cr3t-pw" not in r.text


def test_a_failed_table_fails_the_run_and_the_same_run_id_resumes(nc, shop, tmp_path,
                                                                   write_config):
    # A view under a listed name on the target: that table fails, the others are copied.
    shop.target.execute("CREATE SCHEMA sales; CREATE VIEW sales.credits AS SELECT 1 AS id")
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, GROUPS)
    r = nc("run", "--config", str(cfg), "--run-id", "night-7")
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [
        "nightcopy: error: run night-7 failed: 1 of 2 groups (g2); the summary above says why"]
    assert "failed: [g2] sales.credits:" in r.stdout
    assert "Rerun with --run-id night-7" in r.stdout
    assert shop.target.scalar("SELECT count(*) FROM sales.invoices") == 300
    shop.target.execute("DROP VIEW sales.credits")

    r = nc("run", "--config", str(cfg), "--run-id", "night-7")
    assert r.exit_code == 0, r.text
    # only the unfinished table was copied again; the three others were skipped
    assert r.stdout.count("] skipped ") == 3
    assert "[g2] copied sales.credits: 10 rows" in r.stdout
    assert shop.target.scalar("SELECT count(*) FROM sales.credits") == 10
    assert shop.target.scalar(
        "SELECT count(*) FROM nightcopy.table_results WHERE run_id = 'night-7'"
        " AND status = 'copied'") == 4


def test_broken_config_is_refused_before_anything_is_written(nc, shop, tmp_path, write_config):
    groups = [{"name": "g1", "tables": ["public.customers", "public.nope"]},
              {"name": "g2", "tables": ["sales.*"]}]
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, groups)
    r = nc("run", "--config", str(cfg))
    assert r.exit_code == 1
    assert "group g1: table public.nope does not exist on the source" in r.stderr
    assert shop.target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'nightcopy'") == 0

    overlapping = [{"name": "g1", "tables": ["sales.invoices"]}, {"name": "g2", "tables": ["sales.*"]}]
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, overlapping)
    r = nc("run", "--config", str(cfg))
    assert r.exit_code == 1 and "sales.invoices is in groups g1 and g2" in r.stderr
    r = nc("run", "--config", str(cfg), "--group", "g9")
    assert r.exit_code == 1 and "no group named 'g9'" in r.stderr
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn,
                       "host=/nonexistent dbname=x password=s3cr3t-pw", GROUPS)
    r = nc("run", "--config", str(cfg))
    assert r.exit_code == 1 and "cannot reach the target database" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "s3cr3t-pw" not in r.text


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/hooksecret", _Hook.received
    server.shutdown()


def test_slack_gets_the_notifiers_report_for_one_group(nc, shop, tmp_path, write_config, webhook):
    url, received = webhook
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, GROUPS,
                       slack={"webhook_url": "env:TEST_HOOK"})
    r = nc("run", "--config", str(cfg), "--group", "g2", "--slack", "--run-id", "slack-1",
           env={"TEST_HOOK": url})
    assert r.exit_code == 0, r.text
    assert "Slack report posted" in r.stdout
    assert len(received) == 1
    message = received[0]
    assert "slack-1" in message["text"] and message["blocks"]
    assert "sales.invoices" in json.dumps(message["blocks"])  # the slowest tables come from the report
    assert shop.target.scalar("SELECT to_regclass('public.customers')") is None  # g1 did not run
    assert "hooksecret" not in r.text


def test_slack_without_settings_is_refused_up_front(nc, shop, tmp_path, write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, GROUPS)
    r = nc("run", "--config", str(cfg), "--slack")
    assert r.exit_code == 1 and "has no Slack settings" in r.stderr


def test_dsns_never_reach_the_worker_command_line(tmp_path):
    cmd = worker_command(GroupState("g1", ['public."Order Items"', "sales.*"]), "r1", tmp_path,
                         {"jobs": 3, "strategy": "truncate", "parallel": 2})
    assert cmd[1:4] == ["-m", "nightcopy", "copy"]
    assert cmd[cmd.index("--tables") + 1] == '["public.\\"Order Items\\"", "sales.*"]'
    assert cmd[cmd.index("--report-uri") + 1] == tmp_path.as_uri()
    assert "--jobs" in cmd and "--parallel" not in cmd
    assert "--source" not in cmd and "--target" not in cmd
    assert not any("postgres" in part or "host=" in part for part in cmd)


def test_sigterm_stops_the_workers_too(shop, tmp_path, write_config):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, GROUPS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    run_id = f"term-test-{os.getpid()}"  # unique: another checkout's suite may run this test
    proc = subprocess.Popen([sys.executable, "-m", "nightcopy", "run", "--config", str(cfg),
                             "--run-id", run_id], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # the workers are spawned: stop the run now
        if "[g2] started" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "interrupted" in err, err
    # one line, with the command that resumes it
    assert f"resume with: nightcopy run --config {cfg} --run-id {run_id}" in err
    assert len(err.strip().splitlines()) == 1, err
    # whatever the stopped workers had recorded, none of it says running any more
    if shop.target.scalar("SELECT to_regclass('nightcopy.invocations') IS NOT NULL"):
        assert shop.target.scalar("SELECT count(*) FROM nightcopy.invocations WHERE run_id = "
                                  f"'{run_id}' AND status = 'running'") == 0

    def workers_left() -> list[str]:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if run_id.encode() in cmdline.read_bytes():
                    found.append(cmdline.parent.name)
            except OSError:
                pass
        return found

    assert workers_left() == []


def test_progress_state_follows_the_worker_events():
    from nightcopy.ops.local_run import apply_event

    g = GroupState("g1", ["sales.*"], total=3, expected=["sales.a", "sales.b", "sales.c"])
    apply_event(g, {"event": "run_started", "tables": 3, "jobs": 2})
    apply_event(g, {"event": "table_progress", "table": "sales.a", "bytes": 5000})
    assert g.current == "sales.a" and g.live_bytes == 5000
    apply_event(g, {"event": "table_copied", "table": "sales.a", "rows": 10, "bytes": 6000})
    assert (g.done, g.rows, g.bytes) == (1, 10, 6000)
    # no event names the tables in flight, but only two are left with --jobs 2
    assert g.current == "sales.b (+1)"
    apply_event(g, {"event": "table_failed", "table": "sales.b", "error": "boom"})
    apply_event(g, {"event": "table_skipped", "table": "sales.c"})
    assert (g.done, g.failed, g.skipped, g.current) == (2, 1, 1, None)
    apply_event(g, {"event": "warning", "table": "sales.a", "message": "fk skipped"})
    assert g.warnings == ["fk skipped"]


def test_run_from_an_ssm_prefix(nc, shop, ssm, with_password):
    ssm.put_parameter(Name="/nc/dev/source_dsn", Value=with_password(shop.source.dsn),
                      Type="SecureString")
    ssm.put_parameter(Name="/nc/dev/target_dsn", Value=with_password(shop.target.dsn),
                      Type="SecureString")
    ssm.put_parameter(Name="/nc/dev/table_groups", Type="String",
                      Value=json.dumps([["public.customers"], ["sales.*"]]))
    ssm.put_parameter(Name="/nc/dev/options", Type="String",
                      Value=json.dumps({"jobs": 1, "strategy": "truncate", "lock_timeout": 3}))
    r = nc("run", "--ssm-prefix", "/nc/dev", "--run-id", "ssm-1")
    assert r.exit_code == 0, r.text
    assert "[g1] copied public.customers: 500 rows" in r.stdout
    assert shop.target.query("SELECT group_name, options->>'strategy', options->>'jobs'"
                             " FROM nightcopy.invocations ORDER BY 1") == [
        ("g1", "truncate", "1"), ("g2", "truncate", "1")]
    assert "s3cr3t-pw" not in r.text


@pytest.mark.parametrize("parallel", [1, 3])
def test_parallel_limits_how_many_groups_run_at_once(nc, shop, tmp_path, write_config, parallel):
    # A few seconds of work per group, so that groups started together visibly overlap.
    for name in ("a", "b", "c"):
        shop.source.execute(f"CREATE TABLE public.big_{name} AS SELECT g AS id, md5(g::text) AS v"
                            " FROM generate_series(1, 200000) g")
    groups = [{"name": n, "tables": [f"public.big_{n}"]} for n in ("a", "b", "c")]
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, groups)
    r = nc("run", "--config", str(cfg), "--run-id", f"par-{parallel}", "--parallel",
           str(parallel), "--report-dir", str(tmp_path / "reports"))
    assert r.exit_code == 0, r.text
    # Each worker's run row: started when it began, finished when it ended (the ledger's clock).
    spans = shop.target.query("SELECT started_at, finished_at FROM nightcopy.runs "
                              "WHERE run_id = %s ORDER BY started_at", (f"par-{parallel}",))
    assert len(spans) == 3
    overlapping = sum(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    if parallel == 1:
        assert overlapping == 0, spans  # one group after the other
    else:
        assert overlapping >= 1, spans  # workers of a few seconds each, started together


def test_run_summary_stays_readable_at_80_columns(nc, shop, tmp_path, write_config):
    from tests.ops.test_history import assert_readable

    groups = [{"name": "customers-and-order-items", "tables": GROUPS[0]["tables"]}, GROUPS[1]]
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, groups)
    r = nc("run", "--config", str(cfg), "--run-id", "narrow-1", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.text
    summary = r.stdout[r.stdout.index("nightcopy run narrow-1"):]
    assert_readable(summary, 80, ["customers-and-order-items", "succeeded", "2,500", "2,810",
                                  "2/2"])


def test_run_json_is_the_only_thing_on_stdout(nc, shop, tmp_path, write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, GROUPS)
    r = nc("run", "--config", str(cfg), "--run-id", "json-1", "--json")
    assert r.exit_code == 0, r.text
    result = json.loads(r.stdout)
    assert result["run_id"] == "json-1" and result["ok"] is True
    by_group = {g["group"]: g for g in result["groups"]}
    assert by_group["g1"]["status"] == "succeeded" and by_group["g1"]["rows"] == 2500
    assert by_group["g2"]["copied"] == 2 and len(result["reports"]) == 2
    assert "[g1] copied" in r.stderr  # the progress is still there, on stderr


def test_run_summary_lists_tonights_schema_changes_at_80_columns(nc, shop, tmp_path,
                                                                 write_config):
    """The drift report reaches the terminal: the summary names each changed table and the
    change, folded (never cut) at 80 columns, and the plain progress says it as it happens."""
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, GROUPS)
    first = nc("run", "--config", str(cfg), "--run-id", "drift-1")
    assert first.exit_code == 0, first.text
    assert "Schema changes" not in first.stdout
    shop.source.execute("ALTER TABLE sales.invoices DROP COLUMN amount, "
                        "ADD COLUMN total_amount_in_the_invoice_currency numeric")
    r = nc("run", "--config", str(cfg), "--run-id", "drift-2", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.text
    assert "[g2] schema changed: sales.invoices:" in r.stdout
    summary = r.stdout[r.stdout.index("Schema changes on the source"):]
    lines = summary.splitlines()
    assert all(len(line) <= 80 for line in lines), summary
    joined = " ".join(line.strip() for line in lines)
    assert "[g2] sales.invoices:" in joined and "column amount dropped" in joined
    assert "total_amount_in_the_invoice_currency" in summary.replace("\n", "")
    assert "public.customers" not in summary
