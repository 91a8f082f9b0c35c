"""Secrets (issue 7): fault and bad-input cases run against a server that really checks a
password (scram-sha-256 over 127.0.0.1), with a recognisable password in the DSNs, and a Slack
webhook URL and bot token in SSM; stdout, stderr, the ledger, the report files and the server's
own log, and the Slack messages the notifier builds from the reports, are grepped for it. DSNs that are shown are redacted (postgresql://user:***@host/db).

(Every other test of this suite also carries a recognisable password in its DSNs and greps its
outputs: rel_tools.check_output.)
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from rel_tools import (
    APP_PW,
    MARK,
    SECRET_HOOK,
    SECRET_TOKEN,
    PwServer,
    Worker,
    backends,
    ledger_text,
    ssm_cli_args,
    wait_for,
    worker_env,
)

SOURCE_SQL = """
CREATE TABLE public.items (id int PRIMARY KEY, v text);
INSERT INTO public.items SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
CREATE TABLE public.small (id int);
INSERT INTO public.small VALUES (1);
"""


def _slack_message_module():
    """notifier/slack_message.py, the Slack message builder of the notifier Lambda."""
    path = Path(__file__).resolve().parents[2] / "notifier" / "slack_message.py"
    spec = importlib.util.spec_from_file_location("nc_rel_slack_message", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Outputs:
    """Everything a user, a log or Slack could see."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, what: str, text: str) -> None:
        self.texts.append((what, text or ""))

    def add_dir(self, path: Path) -> None:
        for f in path.rglob("*"):
            if f.is_file():
                self.add(str(f), f.read_text(errors="replace"))

    def assert_clean(self) -> None:
        leaks = [what for what, text in self.texts if MARK in text]
        assert not leaks, f"secret found in: {leaks}"
        tracebacks = [what for what, text in self.texts if "Traceback" in text]
        assert not tracebacks, tracebacks


@pytest.fixture
def pw_dbs(pw_server: PwServer, tmp_path) -> tuple[str, str]:
    stamp = f"{time.monotonic_ns() % 10**9}"
    src = pw_server.create_database(f"sec_src_{stamp}")
    tgt = pw_server.create_database(f"sec_tgt_{stamp}")
    conn = psycopg2.connect(pw_server.admin_dsn.replace("dbname=postgres", f"dbname={src}"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET ROLE nc_app")
        cur.execute(SOURCE_SQL)
    conn.close()
    return src, tgt


def _cli(args: list[str], out: Outputs, what: str, env: dict | None = None) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "nightcopy", *args], capture_output=True,
                          text=True, timeout=120, env=worker_env(env))
    out.add(f"{what} stdout", proc.stdout)
    out.add(f"{what} stderr", proc.stderr)
    return proc.returncode, proc.stderr


def test_no_secret_in_any_output(pw_server: PwServer, pw_dbs, proxies, tmp_path) -> None:
    src_db, tgt_db = pw_dbs
    src, tgt = pw_server.uri(src_db), pw_server.uri(tgt_db)
    assert APP_PW in src and MARK in APP_PW
    reports = tmp_path / "reports"
    out = Outputs()
    base = ["copy", "--source", src, "--target", tgt, "--report-uri", f"file://{reports}"]

    # 1. a good run (report with per-table rows)
    code, err = _cli([*base, "--tables", "public.items, public.small", "--run-id", "ok"], out,
                     "ok")
    assert code == 0, err
    # 2. wrong password: the DSN is shown redacted
    wrong = pw_server.uri(tgt_db, password=f"Wrong{MARK}")
    code, err = _cli(["copy", "--source", src, "--target", wrong, "--tables", "public.items"],
                     out, "wrong-password")
    assert code == 1
    assert re.search(rf"postgresql://nc_app:\*\*\*@127\.0\.0\.1:{pw_server.port}/{tgt_db}", err), err
    # 3. key=value DSN from the environment, unknown table
    code, err = _cli(["copy", "--tables", "public.nosuch"], out, "env-dsn",
                     env={"NIGHTCOPY_SOURCE_DSN": f"host=127.0.0.1 port={pw_server.port} "
                          f"dbname={src_db} user=nc_app password={APP_PW}",
                          "NIGHTCOPY_TARGET_DSN": tgt})
    assert code == 1 and "does not exist on the source" in err
    # 4. unreachable server (the DSN is in the message, redacted)
    code, err = _cli(["copy", "--source", src, "--target",
                      f"postgresql://nc_app:{APP_PW}@127.0.0.1:1/{tgt_db}?connect_timeout=3",
                      "--tables", "public.items"], out, "unreachable")
    assert code == 1 and "nc_app:***@127.0.0.1:1" in err, err
    # 5. the target connection cut mid-COPY (proxy on 127.0.0.1 in front of the TCP server)
    proxy = proxies(("127.0.0.1", pw_server.port), cut_after=300_000, direction="up", cuts=1)
    cut_target = f"postgresql://nc_app:{APP_PW}@127.0.0.1:{proxy.port}/{tgt_db}"
    code, err = _cli(["copy", "--source", src, "--target", cut_target, "--retries", "0",
                      "--tables", "public.items", "--run-id", "cut",
                      "--report-uri", f"file://{reports}"], out, "cut")
    assert code == 1 and proxy.cut_done == 1, err
    # 6. lock contention until the swap gives up (error text goes to the report and ledger)
    holder = psycopg2.connect(tgt)
    with holder.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.items")
    code, err = _cli([*base, "--tables", "public.items", "--run-id", "locked",
                      "--lock-timeout", "0.1", "--lock-attempts", "2"], out, "locked")
    holder.rollback()
    holder.close()
    assert code == 1 and "could not take the lock" in err, err
    # 7. kill -9 mid-run; the session's application_name carries no secret either
    w = Worker([*base, "--tables", "public.items", "--run-id", "killed"], tmp_path / "killed")
    try:
        seen = wait_for(lambda: backends(pw_server.admin_dsn.replace(
            "dbname=postgres", f"dbname={tgt_db}"), "nightcopy:killed"), 30)
        out.add("pg_stat_activity", repr(seen))
        w.kill9()
    finally:
        w.close()
    out.add("killed stdout", w.stdout)
    out.add("killed stderr", w.stderr)
    # 8. SSM: DSNs as SecureStrings, webhook URL and bot token present; a good and a bad group
    prefix = "/nightcopy/secrets"
    spec = {"parameters": {
        f"{prefix}/source_dsn": ["SecureString", src],
        f"{prefix}/target_dsn": ["SecureString", tgt],
        f"{prefix}/slack_webhook_url": ["SecureString", SECRET_HOOK],
        f"{prefix}/slack_bot_token": ["SecureString", SECRET_TOKEN],
        f"{prefix}/slack_channel": ["String", "#night"],
        f"{prefix}/table_groups": ["String", '[{"name": "good", "tables": ["public.small"]},'
                                             ' {"name": "bad", "tables": ["public.nosuch"]}]']}}
    for group, expected in (("good", 0), ("bad", 1)):
        proc = subprocess.run(ssm_cli_args(spec, ["copy", "--ssm-prefix", prefix, "--group", group,
                                                  "--report-uri", f"file://{reports}"]),
                              capture_output=True, text=True, timeout=120, env=worker_env())
        out.add(f"ssm-{group} stdout", proc.stdout)
        out.add(f"ssm-{group} stderr", proc.stderr)
        assert proc.returncode == expected, proc.stderr
    # everything written anywhere
    admin_tgt = pw_server.admin_dsn.replace("dbname=postgres", f"dbname={tgt_db}")
    ledger = ledger_text(admin_tgt)
    assert "locked" in ledger and "could not take the lock" in ledger
    out.add("ledger", ledger)
    conn = psycopg2.connect(admin_tgt)
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(string_agg(options::text, ' '), '') FROM nightcopy.invocations")
        out.add("ledger options", cur.fetchone()[0])
    conn.close()
    assert list(reports.rglob("*.json")), "no report written"
    out.add_dir(reports)
    # the Slack messages the notifier would post from those reports (success and failure form)
    slack = _slack_message_module()
    for run_dir in reports.iterdir():
        summaries = [json.loads(f.read_text()) for f in run_dir.glob("*.json")]
        failed = [{"group": s.get("group") or "default", "error": "; ".join(
            r.get("error", "") for r in s.get("results", []))} for s in summaries
            if s.get("status") != "succeeded"]
        message = slack.build_report(summaries, run_id=run_dir.name, failed_groups=failed)
        out.add(f"slack {run_dir.name}", json.dumps(message, ensure_ascii=False))
    assert sum(what.startswith("slack ") for what, _ in out.texts) >= 4
    out.add("server log", (pw_server.datadir.parent / "log").read_text(errors="replace"))
    out.assert_clean()
