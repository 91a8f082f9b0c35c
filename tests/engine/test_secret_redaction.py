"""A server message that echoes secrets reaches no output unredacted: the table_failed event,
stderr, the run summary, the report file and the ledger all go through scrub()."""

from __future__ import annotations

import json

import psycopg2.extensions

PASSWORD = "Pw-Echoed-7731"  # registered: it is the password of the worker's target DSN
WEBHOOK = "https://hooks.slack.com/services/T0ECHO/B0ECHO/HookEchoed7731"
TOKEN = "xoxb-7731-TokEchoed"

# An event trigger on the target that refuses the staging table with a message quoting the
# password (bare, as a server or an extension might echo a connection string back), a webhook
# URL and a bot token.
REFUSE = f"""
CREATE FUNCTION public.refuse_leaky() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
              WHERE object_identity LIKE 'nightcopy\\_stage\\_%.leaky') THEN
    RAISE EXCEPTION 'policy refused leaky (caller {PASSWORD}, notify {WEBHOOK} with {TOKEN})';
  END IF;
END $$;
CREATE EVENT TRIGGER refuse_leaky ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION public.refuse_leaky();
"""


def test_a_worker_error_echoing_secrets_comes_out_redacted(cli, dbs, tmp_path):
    dbs.source.execute("CREATE TABLE public.leaky (id int); INSERT INTO public.leaky VALUES (1);"
                       "CREATE TABLE public.fine (id int); INSERT INTO public.fine VALUES (1)")
    dbs.target.execute(REFUSE)
    target = psycopg2.extensions.make_dsn(dbs.target.dsn, password=PASSWORD)  # trust: ignored
    result = cli(["copy", "--source", dbs.source.dsn, "--target", target, "--tables",
                  "public.leaky,public.fine", "--run-id", "r1", "--group", "g1",
                  "--report-uri", f"file://{tmp_path}"])
    assert result.returncode == 1
    failed = result.events_of("table_failed")
    assert [e["table"] for e in failed] == ["public.leaky"]
    # The message itself is kept (the user needs it), only the secrets are masked.
    assert "policy refused leaky (caller ***" in failed[0]["error"]
    assert "https://hooks.slack.com/***" in failed[0]["error"] and "xox?-***" in failed[0]["error"]
    report = (tmp_path / "r1" / "g1.json").read_text()
    assert "policy refused leaky" in report
    ledger = json.dumps(dbs.target.query("SELECT * FROM nightcopy.table_results"), default=str)
    assert "policy refused leaky" in ledger
    for where, text in (("stdout", result.stdout), ("stderr", result.stderr),
                        ("report", report), ("ledger", ledger)):
        for secret in (PASSWORD, WEBHOOK, TOKEN, "HookEchoed7731", "TokEchoed"):
            assert secret not in text, f"{secret} in {where}"
    assert dbs.target.scalar("SELECT count(*) FROM public.fine") == 1
