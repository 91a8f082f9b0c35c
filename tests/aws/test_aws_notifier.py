"""The Slack notifier: Block Kit limits, posting through a local Slack stand-in, the alarm path."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import boto3
import pytest
from aws_harness import ACCOUNT, REGION, wait_for_execution
from slack_message import MAX_TOTAL_TEXT, build_alert, build_report
from slack_post import SlackPostError, post_report

PREFIX = "/nightcopy/test"
BUCKET = "nightcopy-reports-test"


def summary(group: str, n_tables: int, *, failed: int = 0, run_id: str = "nightly-2026-11-25",
            long_error: bool = False) -> dict:
    results = []
    for i in range(n_tables):
        bad = i < failed
        r = {"table": f'public."{group} table {i:04d}"', "status": "failed" if bad else "copied",
             "rows": 1000 * i, "bytes": 50_000 * i, "seconds": float(i % 97) + 0.5}
        if bad:
            r["error"] = ("duplicate key <value> & more " * (200 if long_error else 1)).strip()
        results.append(r)
    return {"run_id": run_id, "group": group, "status": "failed" if failed else "succeeded",
            "tables": n_tables, "failed": failed, "rows": sum(r["rows"] for r in results),
            "bytes": sum(r["bytes"] for r in results), "seconds": 60.0 * n_tables,
            "failed_tables": [r["table"] for r in results if r["status"] == "failed"],
            "started_at": "2026-11-25T01:00:00Z", "finished_at": "2026-11-25T02:00:00Z",
            "results": results}


def assert_within_slack_limits(message: dict) -> None:
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= 50
    total = 0
    for b in blocks:
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert len(b["text"]["text"]) <= 3000
                total += len(b["text"]["text"])
            assert len(b.get("fields", [])) <= 10
            for f in b.get("fields", []):
                assert len(f["text"]) <= 2000
                total += len(f["text"])
        if b["type"] == "context":
            assert len(b["elements"]) <= 10
            total += sum(len(e["text"]) for e in b["elements"])
    assert total <= MAX_TOTAL_TEXT
    assert message["text"] and len(message["text"]) <= 3000


def test_success_report_shows_totals_groups_and_slowest_tables():
    msg = build_report([summary("sales", 3), summary("crm", 2)], run_id="nightly-2026-11-25",
                       execution_url="https://example.invalid/exec")
    assert_within_slack_limits(msg)
    assert msg["text"] == ("nightcopy nightly-2026-11-25 succeeded: 2 groups, 5 tables, "
                           "4,000 rows in 3m 00s")
    text = json.dumps(msg["blocks"], ensure_ascii=False)
    assert "*Tables*\\n5" in text and "*Night took*\\n3m 00s" in text
    assert "✅ *crm*: 2 tables, 1,000 rows" in text
    slowest = next(b for b in msg["blocks"] if "Slowest" in b.get("text", {}).get("text", ""))
    lines = slowest["text"]["text"].splitlines()
    assert lines[1].startswith('`public."sales table 0002"` (sales): 2.5s')
    assert "<https://example.invalid/exec|execution graph>" in text


def test_thousands_of_tables_stay_within_block_kit_limits():
    summaries = [summary(f"g{i:03d}", 40) for i in range(120)]  # 4,800 tables
    msg = build_report(summaries, run_id="nightly-2026-11-25")
    assert_within_slack_limits(msg)
    text = json.dumps(msg["blocks"], ensure_ascii=False)
    assert "…and 95 more" in text  # 120 groups, 25 listed
    assert "more tables" in text
    assert "4,800" in text


def test_failure_report_names_failed_groups_errors_and_log_links():
    summaries = [summary("sales", 3), summary("crm", 4, failed=2)]
    failed = [{"group": "crm", "error": "build FAILED", "logs_url": "https://logs.invalid/crm"},
              {"group": "hr", "error": "CodeBuild.AccountLimitExceededException: Cannot have "
                                      "more than 0 builds in queue", "logs_url": None}]
    msg = build_report(summaries, run_id="nightly-2026-11-25", failed_groups=failed,
                       execution_url="https://example.invalid/exec")
    assert_within_slack_limits(msg)
    assert msg["text"].startswith("nightcopy nightly-2026-11-25 FAILED: groups crm, hr")
    assert msg["blocks"][0]["text"]["text"] == "❌ nightcopy nightly-2026-11-25 failed: 2 of 3 groups"
    crm = msg["blocks"][1]["text"]["text"]
    assert "*crm* failed" in crm and "build FAILED" in crm
    assert '`public."crm table 0000"`: duplicate key &lt;value&gt; &amp; more' in crm
    assert "<https://logs.invalid/crm|build logs>" in crm
    hr = msg["blocks"][2]["text"]["text"]
    assert "no report from this group" in hr and "Cannot have more than 0 builds" in hr
    assert "1 group succeeded" in json.dumps(msg["blocks"])


def test_many_failed_groups_with_long_errors_stay_within_limits():
    summaries = [summary(f"g{i:02d}", 30, failed=30, long_error=True) for i in range(60)]
    failed = [{"group": s["group"], "error": "x" * 5000, "logs_url": "https://l.invalid/"}
              for s in summaries]
    msg = build_report(summaries, run_id="nightly-2026-11-25", failed_groups=failed)
    assert_within_slack_limits(msg)
    text = json.dumps(msg["blocks"], ensure_ascii=False)
    assert "more failed groups" in text or "sections left out" in text
    assert "…and 29 more" in text  # failed tables of a group beyond what fits its share


@pytest.mark.parametrize("n_failed, name_length, long_error", [
    (11, 3, False), (12, 3, True), (25, 20, True), (60, 3, True), (60, 40, False),
])
def test_a_report_with_many_failed_groups_names_every_one(n_failed, name_length, long_error):
    # Group names as an operator writes them (sales, billing-eu-central-reports, ...).
    names = [f"g{i:02d}".ljust(name_length, "x") for i in range(n_failed)]
    summaries = [summary(n, 8, failed=2, long_error=long_error) for n in names]
    summaries += [summary("fine", 3)]
    failed = [{"group": n, "error": "boom " * (400 if long_error else 1),
               "logs_url": "https://l.invalid/"} for n in names]
    msg = build_report(summaries, run_id="nightly-2026-11-25", failed_groups=failed)
    assert_within_slack_limits(msg)
    text = json.dumps(msg["blocks"], ensure_ascii=False)
    missing = [n for n in names if n not in text]
    assert not missing, f"failed groups not named in the report: {missing}"
    assert f"failed: {n_failed} of" in msg["blocks"][0]["text"]["text"]


def test_webhook_post_delivers_the_message(slack):
    msg = build_report([summary("sales", 2)], run_id="nightly-2026-11-25")
    post_report(msg, webhook_url=slack.webhook_url)
    assert len(slack.requests) == 1
    assert slack.requests[0]["path"] == "/services/T000/B000/XXXXSECRETXXXX"
    assert slack.messages[0]["blocks"] == msg["blocks"]
    assert slack.messages[0]["text"] == msg["text"]


def test_webhook_post_waits_out_a_429_and_retries(slack):
    slack.script = [(429, {"Retry-After": "1"}, "rate_limited")]
    started = time.monotonic()
    post_report({"text": "hi", "blocks": []}, webhook_url=slack.webhook_url)
    assert time.monotonic() - started >= 1.0  # honoured Retry-After
    assert [r["status"] for r in slack.requests] == [429, 200]
    assert slack.messages == [{"text": "hi", "blocks": []}]


def test_webhook_post_retries_server_errors(slack):
    slack.script = [(502, {}, "bad gateway"), (500, {}, "oops")]
    post_report({"text": "hi"}, webhook_url=slack.webhook_url)
    assert [r["status"] for r in slack.requests] == [502, 500, 200]


def test_refused_post_raises_without_revealing_the_url(slack, caplog):
    caplog.set_level(logging.DEBUG)
    slack.script = [(404, {}, "no_service")]
    with pytest.raises(SlackPostError) as info:
        post_report({"text": "hi"}, webhook_url=slack.webhook_url)
    assert "HTTP 404" in str(info.value) and "no_service" in str(info.value)
    assert "XXXXSECRETXXXX" not in str(info.value)
    assert "XXXXSECRETXXXX" not in caplog.text
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_unreachable_slack_raises_without_revealing_the_url():
    with pytest.raises(SlackPostError) as info:
        post_report({"text": "hi"}, webhook_url="http://127.0.0.1:9/services/XXXXSECRETXXXX")
    assert "unreachable" in str(info.value) and "XXXXSECRETXXXX" not in str(info.value)


def test_bot_token_posts_to_the_channel_with_retries(slack):
    slack.script = [(429, {"Retry-After": "0"}, '{"ok": false, "error": "ratelimited"}')]
    post_report({"text": "hi", "blocks": [{"type": "divider"}]}, bot_token="xoxb-SECRET",
                channel="#nightly", base_url=slack.api_url)
    ok = [r for r in slack.requests if r["status"] == 200]
    assert len(slack.requests) == 2 and len(ok) == 1
    assert ok[0]["path"] == "/api/chat.postMessage"
    assert ok[0]["authorization"] == "Bearer xoxb-SECRET"
    assert ok[0]["body"]["channel"] == "#nightly"
    assert ok[0]["body"]["blocks"] == [{"type": "divider"}]


def test_bot_token_api_error_is_reported_without_the_token(slack):
    slack.script = [(200, {"Content-Type": "application/json"},
                     '{"ok": false, "error": "channel_not_found"}')]
    with pytest.raises(SlackPostError) as info:
        post_report({"text": "hi"}, bot_token="xoxb-SECRET", channel="#nope",
                    base_url=slack.api_url)
    assert "channel_not_found" in str(info.value) and "xoxb" not in str(info.value)


def test_no_destination_is_an_error():
    with pytest.raises(SlackPostError, match="no Slack destination"):
        post_report({"text": "hi"})


# --- the Lambda handler -------------------------------------------------------------------


@pytest.fixture
def notifier_env(moto_aws, slack, monkeypatch):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{PREFIX}/slack_webhook_url", Value=slack.webhook_url,
                      Type="SecureString")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("NIGHTCOPY_SSM_PREFIX", PREFIX + "/")
    monkeypatch.setenv("NIGHTCOPY_REPORT_URI", f"s3://{BUCKET}/reports")
    monkeypatch.setenv("DEADMAN_ALARM_NAME", "nightcopy-no-success")
    monkeypatch.setenv("FAILED_ALARM_NAME", "nightcopy-failed")
    return s3


def test_handler_posts_the_report_from_the_workers_summaries(notifier_env, slack,
                                                             notifier_app):
    for s in (summary("sales", 3), summary("crm", 2)):
        notifier_env.put_object(Bucket=BUCKET, Key=f"reports/nightly-2026-11-25/{s['group']}.json",
                                Body=json.dumps(s).encode())
    # another night's report must not leak into this one
    other = summary("old", 9, run_id="nightly-2026-11-24")
    notifier_env.put_object(Bucket=BUCKET, Key="reports/nightly-2026-11-24/old.json",
                            Body=json.dumps(other).encode())
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:nightcopy:nightly-2026-11-25"
    out = notifier_app.handler({"kind": "run_report", "run_id": "nightly-2026-11-25",
                                "execution_arn": arn,
                                "groups": [{"group": "sales", "status": "SUCCEEDED"},
                                           {"group": "crm", "status": "SUCCEEDED"}]})
    assert out == {"posted": True, "failed_groups": 0}
    assert len(slack.messages) == 1
    text = json.dumps(slack.messages[0]["blocks"])
    assert "5 tables" in slack.messages[0]["text"] and "old" not in text
    assert f"states/home?region={REGION}#/v2/executions/details/{arn}" in text


def test_handler_reads_slack_settings_once_per_container(notifier_env, slack, notifier_app):
    event = {"kind": "run_report", "run_id": "r1", "groups": []}
    notifier_app.handler(event)
    boto3.client("ssm").delete_parameter(Name=f"{PREFIX}/slack_webhook_url")
    notifier_app.handler(event)  # warm container: cached, no SSM read
    assert len(slack.messages) == 2


def _alarm(name: str, state: str = "ALARM", when: datetime | None = None) -> dict:
    when = when or datetime.now(UTC)
    message = {"AlarmName": name, "NewStateValue": state, "OldStateValue": "OK",
               "StateChangeTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
               "Trigger": {"Metrics": []}}
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(message)}}]}


WAIT_ASL = json.dumps({"StartAt": "W", "TimeoutSeconds": 1,
                       "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}})


@pytest.fixture
def machine(notifier_env, monkeypatch):
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(name="nightcopy", definition=WAIT_ASL,
                                   roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    return sfn, arn


def test_alarm_reports_a_timed_out_execution(machine, slack, notifier_app):
    sfn, arn = machine
    ex = sfn.start_execution(stateMachineArn=arn, name="nightly-2026-11-25")
    assert wait_for_execution(sfn, ex["executionArn"], timeout=30)["status"] == "TIMED_OUT"
    out = notifier_app.handler(_alarm("nightcopy-failed"))
    assert out["posted"] is True
    assert len(slack.messages) == 1
    msg = slack.messages[0]
    assert msg["text"] == "nightcopy: nightcopy nightly-2026-11-25 timed out"
    assert "execution graph" in json.dumps(msg["blocks"])


def test_alarm_reports_an_aborted_execution(machine, slack, notifier_app, monkeypatch):
    sfn, _ = machine
    # no execution timeout here: a loaded machine must not time it out before the stop
    arn = sfn.create_state_machine(
        name="waits", roleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
        definition=json.dumps({"StartAt": "W", "States": {"W": {
            "Type": "Wait", "Seconds": 60, "End": True}}}))["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    ex = sfn.start_execution(stateMachineArn=arn, name="nightly-2026-11-25-r2")
    sfn.stop_execution(executionArn=ex["executionArn"])
    assert wait_for_execution(sfn, ex["executionArn"])["status"] == "ABORTED"
    notifier_app.handler(_alarm("nightcopy-failed"))
    assert [m["text"] for m in slack.messages] == [
        "nightcopy: nightcopy nightly-2026-11-25-r2 was aborted"]
    # the operator's next move: finish that night (its unfinished groups, resumed)
    assert "nightcopy start --finish 2026-11-25" in json.dumps(slack.messages[0]["blocks"])


def test_alarm_reports_a_failure_the_state_machine_could_not_post(machine, slack,
                                                                    notifier_app, monkeypatch):
    sfn, _ = machine
    arn = sfn.create_state_machine(
        name="fails", roleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
        definition=json.dumps({"StartAt": "F", "States": {"F": {
            "Type": "Fail", "Error": "nightcopy.Boom", "Cause": "bad table_groups JSON"}}}),
    )["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, name="nightly-2026-11-25")
    assert wait_for_execution(sfn, ex["executionArn"])["status"] == "FAILED"
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    out = notifier_app.handler(_alarm("nightcopy-failed"))
    assert out["posted"] is True
    msg = slack.messages[0]
    assert msg["text"] == "nightcopy: nightcopy nightly-2026-11-25 failed before it could report"
    assert "nightcopy.Boom: bad table_groups JSON" in json.dumps(msg["blocks"])


@pytest.mark.parametrize("state", ["INSUFFICIENT_DATA", "ALARM"])
def test_deadman_alarm_reports_a_night_that_never_started(machine, slack, notifier_app, state):
    # INSUFFICIENT_DATA is how the dead-man alarm speaks (template.yaml, NoSuccessAlarm)
    out = notifier_app.handler(_alarm("nightcopy-no-success", state=state))
    assert out["posted"] is True
    assert slack.messages[0]["text"] == ("nightcopy: no nightly copy started in the last "
                                         "26 hours")


def test_insufficient_data_of_another_alarm_posts_nothing(machine, slack, notifier_app):
    out = notifier_app.handler(_alarm("nightcopy-failed", state="INSUFFICIENT_DATA"))
    assert out["posted"] is False and slack.requests == []


def test_deadman_alarm_is_quiet_when_an_execution_started(machine, slack, notifier_app):
    sfn, arn = machine
    ex = sfn.start_execution(stateMachineArn=arn, name="nightly-2026-11-25")
    sfn.stop_execution(executionArn=ex["executionArn"])
    out = notifier_app.handler(_alarm("nightcopy-no-success"))
    assert out["posted"] is False and slack.requests == []


def test_ok_transition_posts_nothing(machine, slack, notifier_app):
    out = notifier_app.handler(_alarm("nightcopy-no-success", state="OK"))
    assert out["posted"] is False and slack.requests == []


def test_alert_message_is_escaped():
    msg = build_alert("x", ["a <b> & c"])
    assert msg["blocks"][1]["text"]["text"] == "a &lt;b&gt; &amp; c"


def test_other_alarms_do_not_repeat_a_timed_out_night(machine, slack, notifier_app):
    sfn, arn = machine
    ex = sfn.start_execution(stateMachineArn=arn, name="nightly-2026-11-25")
    assert wait_for_execution(sfn, ex["executionArn"], timeout=30)["status"] == "TIMED_OUT"
    assert notifier_app.handler(_alarm("nightcopy-failed"))["posted"] is True
    out = notifier_app.handler(_alarm("nightcopy-lambda-errors"))
    assert out["posted"] is False
    assert len(slack.messages) == 1
