"""The real statemachines/nightcopy.asl.json, executed by moto's interpreter.

Builds are simulated here (a runner that writes the worker's report to S3 like the worker does),
so these tests show the ASL's own behaviour fast: names, overrides, Retry/Catch, the verdict and
the one Slack message. test_aws_end_to_end.py runs the real worker against PostgreSQL.
"""

from __future__ import annotations

import json
import threading

import boto3
import pytest
from aws_harness import (
    ACCOUNT,
    BUCKET,
    PREFIX,
    REGION,
    fake_build,
    history,
    integrations,
    load_asl,
    wait_for_execution,
)

PROJECT = "nightcopy-worker"
NOTIFIER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nightcopy-notifier"


def substitutions(concurrency: int = 2) -> dict[str, str]:
    return {
        "MapConcurrency": str(concurrency),
        "BuildTaskTimeoutSeconds": "3600",
        "SsmPrefix": PREFIX,
        "ProjectName": PROJECT,
        "ReportUri": f"s3://{BUCKET}/reports",
        "NotifierFunctionArn": NOTIFIER,
    }


class SimulatedBuilds:
    """Stands in for CodeBuild + worker: writes the group's report, fails listed groups."""

    def __init__(self, fail_groups: set[str] = frozenset(), fail_times: int = 99, *,
                 retryable: bool = True, failed_status: str = "FAILED",
                 write_report: bool = True):
        self.fail_groups = set(fail_groups)
        self.fail_times = fail_times
        # what a failed build's report says, how the build ends, whether it wrote a report
        self.retryable, self.failed_status = retryable, failed_status
        self.write_report = write_report
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0

    def __call__(self, params: dict) -> dict:
        env = {e["Name"]: e["Value"] for e in params["EnvironmentVariablesOverride"]}
        with self.lock:
            self.calls.append(env)
            attempt = sum(1 for c in self.calls if c["NIGHTCOPY_GROUP"] == env["NIGHTCOPY_GROUP"])
        group = env["NIGHTCOPY_GROUP"]
        ok = not (group in self.fail_groups and attempt <= self.fail_times)
        tables = json.loads(env["NIGHTCOPY_TABLES"])
        results = [{"table": t, "status": "copied" if ok or i else "failed", "rows": 10 * (i + 1),
                    "bytes": 100, "seconds": float(i + 1),
                    **({} if ok or i else {"error": "relation \"x\" <is> a view"})}
                   for i, t in enumerate(tables)]
        summary = {"run_id": env["NIGHTCOPY_RUN_ID"], "group": group,
                   "status": "succeeded" if ok else "failed", "tables": len(tables),
                   "failed": 0 if ok else 1, "rows": sum(r["rows"] for r in results),
                   "bytes": 100 * len(tables), "seconds": float(len(tables)),
                   "failed_tables": [] if ok else [tables[0]],
                   "started_at": "2026-11-25T01:00:00Z", "finished_at": "2026-11-25T01:01:00Z",
                   "results": results, "retryable": not ok and self.retryable,
                   "schema_version": 2}
        bucket, _, prefix = env["NIGHTCOPY_REPORT_URI"][5:].partition("/")
        if ok or self.write_report:
            boto3.client("s3").put_object(Bucket=bucket,
                                          Key=f"{prefix}/{env['NIGHTCOPY_RUN_ID']}/{group}.json",
                                          Body=json.dumps(summary).encode())
        return fake_build(PROJECT, ok, self.failed_status)


def run(groups, builds, notifier_app, name="nightly-2026-11-25", concurrency=2) -> tuple:
    sfn = boto3.client("stepfunctions")
    boto3.client("ssm").put_parameter(Name=f"{PREFIX}/table_groups", Value=json.dumps(groups),
                                      Type="String", Overwrite=True)
    with integrations(builds, {NOTIFIER: notifier_app.handler}):
        arn = sfn.create_state_machine(
            name="nightcopy", definition=load_asl(substitutions(concurrency)),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/nightcopy-sfn")["stateMachineArn"]
        ex = sfn.start_execution(stateMachineArn=arn, name=name,
                                 input=json.dumps({"date": "2026-11-25"}))
        desc = wait_for_execution(sfn, ex["executionArn"])
    return desc, history(sfn, ex["executionArn"])


def test_all_groups_copied_posts_one_report_and_succeeds(stack, slack, notifier_app,
                                                         retry_waits):
    builds = SimulatedBuilds()
    groups = [{"name": "sales", "tables": ["sales.*", "public.orders"]},
              {"name": "crm", "tables": ['public."Order Items"']},
              {"name": "big", "tables": ["public.events"]}]
    desc, _ = run(groups, builds, notifier_app)

    assert desc["status"] == "SUCCEEDED", desc
    # one build per group, each told its group, its tables (JSON string), the run id and where
    # to find its settings and write its report - and nothing secret
    assert sorted(c["NIGHTCOPY_GROUP"] for c in builds.calls) == ["big", "crm", "sales"]
    sales = next(c for c in builds.calls if c["NIGHTCOPY_GROUP"] == "sales")
    assert json.loads(sales["NIGHTCOPY_TABLES"]) == ["sales.*", "public.orders"]
    assert sales["NIGHTCOPY_RUN_ID"] == "nightly-2026-11-25"
    assert sales["NIGHTCOPY_SSM_PREFIX"] == PREFIX
    assert sales["NIGHTCOPY_REPORT_URI"] == f"s3://{BUCKET}/reports"
    assert set(sales) == {"NIGHTCOPY_GROUP", "NIGHTCOPY_TABLES", "NIGHTCOPY_RUN_ID",
                          "NIGHTCOPY_SSM_PREFIX", "NIGHTCOPY_REPORT_URI",
                          "NIGHTCOPY_EXECUTION_OPTIONS"}
    assert sales["NIGHTCOPY_EXECUTION_OPTIONS"] == "{}"  # the nightly input carries none
    assert retry_waits == []

    # exactly one Slack message: the success report with groups and the slowest tables
    assert len(slack.requests) == 1
    msg = slack.messages[0]
    assert "nightly-2026-11-25 succeeded" in msg["text"]
    text = json.dumps(msg["blocks"], ensure_ascii=False)
    for needle in ("*sales*", "*crm*", "*big*", "Slowest tables", "public.orders",
                   "execution graph", "nightly-2026-11-25"):
        assert needle in text
    out = json.loads(desc["output"])
    assert out["any_failed"] is False
    assert {g["group"]: g["status"] for g in out["groups"]} == {
        "sales": "SUCCEEDED", "crm": "SUCCEEDED", "big": "SUCCEEDED"}


def test_failed_group_is_retried_once_then_reported_and_execution_fails(
        stack, slack, notifier_app, retry_waits):
    builds = SimulatedBuilds(fail_groups={"crm"})
    groups = [{"name": "sales", "tables": ["public.orders"]},
              {"name": "crm", "tables": ["public.view_like", "public.customers"]}]
    desc, events = run(groups, builds, notifier_app)

    assert desc["status"] == "FAILED"
    assert desc.get("error") == "nightcopy.GroupsFailed"
    crm_calls = [c for c in builds.calls if c["NIGHTCOPY_GROUP"] == "crm"]
    assert len(crm_calls) == 2  # one retry of the failed build, same run id (the worker resumes)
    assert {c["NIGHTCOPY_RUN_ID"] for c in crm_calls} == {"nightly-2026-11-25"}
    # the loop's Wait (RetryWaitSeconds, 60 in the template), not a Retry of the task
    assert retry_waits == []
    assert [e["stateEnteredEventDetails"]["name"] for e in events
            if e["type"] == "WaitStateEntered"] == ["WaitBeforeRetry"]
    # the other group was neither cancelled nor lost
    assert len([c for c in builds.calls if c["NIGHTCOPY_GROUP"] == "sales"]) == 1

    assert len(slack.requests) == 1  # one failure message, no success message
    msg = slack.messages[0]
    assert "FAILED" in msg["text"] and "crm" in msg["text"]
    text = json.dumps(msg["blocks"], ensure_ascii=False)
    assert "build FAILED" in text
    assert "public.view_like" in text and "&lt;is&gt; a view" in text  # escaped error text
    assert "build logs" in text and "codebuild/projects/nightcopy-worker/build/" in text
    assert "1 group succeeded" in text
    # the Map output stays small: the failed build's cause (the whole Build JSON) is trimmed
    failed_state = [e for e in events if e["type"] == "MapStateExited"]
    out = json.loads(failed_state[-1]["stateExitedEventDetails"]["output"])
    crm = next(g for g in out["groups"] if g["group"] == "crm")
    assert crm["status"] == "FAILED" and crm["error"] == "build FAILED"
    assert "PADDING" not in json.dumps(out)


def test_flaky_build_succeeds_on_its_retry(stack, slack, notifier_app, retry_waits):
    builds = SimulatedBuilds(fail_groups={"crm"}, fail_times=1)
    desc, _ = run([{"name": "crm", "tables": ["public.customers"]}], builds, notifier_app)
    assert desc["status"] == "SUCCEEDED"
    assert len(builds.calls) == 2
    assert len(slack.messages) == 1 and "succeeded" in slack.messages[0]["text"]


def test_plain_lists_are_named_g1_g2(stack, slack, notifier_app, retry_waits):
    builds = SimulatedBuilds()
    desc, _ = run([["public.a", "public.b"], ["sales.*"]], builds, notifier_app)
    assert desc["status"] == "SUCCEEDED"
    assert sorted((c["NIGHTCOPY_GROUP"], c["NIGHTCOPY_TABLES"]) for c in builds.calls) == [
        ("g1", '["public.a","public.b"]'), ("g2", '["sales.*"]')]


def test_map_concurrency_comes_from_the_template_parameter(stack, slack, notifier_app,
                                                           retry_waits):
    _, events = run([["public.a"], ["public.b"], ["public.c"]], SimulatedBuilds(),
                    notifier_app, concurrency=3)
    settings = next(e for e in events if e["type"] == "PassStateExited"
                    and e["stateExitedEventDetails"]["name"] == "Settings")
    out = json.loads(settings["stateExitedEventDetails"]["output"])
    assert out["settings"] == {"concurrency": 3, "build_timeout": 3600, "retry_wait": 0}


def test_missing_table_groups_parameter_fails_with_one_message(stack, slack, notifier_app,
                                                               retry_waits):
    sfn = boto3.client("stepfunctions")
    builds = SimulatedBuilds()
    with integrations(builds, {NOTIFIER: notifier_app.handler}):
        arn = sfn.create_state_machine(
            name="nightcopy", definition=load_asl(substitutions()),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/nightcopy-sfn")["stateMachineArn"]
        ex = sfn.start_execution(stateMachineArn=arn, name="nightly-2026-11-26")
        desc = wait_for_execution(sfn, ex["executionArn"])
    assert desc["status"] == "FAILED"
    assert builds.calls == []
    assert len(slack.messages) == 1
    text = json.dumps(slack.messages[0]["blocks"])
    assert "table_groups" in text and "ParameterNotFound" in text


def test_empty_table_groups_fails_the_night(stack, slack, notifier_app, retry_waits):
    builds = SimulatedBuilds()
    desc, _ = run([], builds, notifier_app)
    assert desc["status"] == "FAILED"
    assert builds.calls == []
    assert len(slack.messages) == 1
    assert "table_groups lists no groups" in json.dumps(slack.messages[0]["blocks"])


def test_group_without_tables_fails_alone(stack, slack, notifier_app, retry_waits):
    builds = SimulatedBuilds()
    desc, _ = run([{"name": "ok", "tables": ["public.a"]}, {"name": "typo", "table": ["x"]}],
                  builds, notifier_app)
    assert desc["status"] == "FAILED"
    assert [c["NIGHTCOPY_GROUP"] for c in builds.calls] == ["ok"]
    text = " ".join(b.get("text", {}).get("text", "") for b in slack.messages[0]["blocks"])
    assert "*typo* failed" in text and 'has no "tables" list' in text


def test_alarm_after_a_reported_failure_posts_nothing_more(stack, slack, notifier_app,
                                                           retry_waits, monkeypatch):
    desc, _ = run([{"name": "crm", "tables": ["public.b"]}], SimulatedBuilds({"crm"}),
                  notifier_app)
    assert desc["status"] == "FAILED" and len(slack.messages) == 1
    monkeypatch.setenv("STATE_MACHINE_ARN", desc["stateMachineArn"])
    alarm = {"AlarmName": "nightcopy-failed", "NewStateValue": "ALARM"}
    out = notifier_app.handler({"Records": [{"EventSource": "aws:sns",
                                             "Sns": {"Message": json.dumps(alarm)}}]})
    assert out["posted"] is False
    assert len(slack.messages) == 1  # exactly one message for the night


@pytest.mark.parametrize(("status", "retryable", "report", "builds_run"), [
    ("FAILED", True, True, 2),      # transient (a lost connection, a lock): one more try
    ("FAULT", True, True, 2),       # CodeBuild's own fault, same
    ("FAILED", False, True, 1),     # a refusal or a bad table list fails the same way again
    ("FAILED", True, False, 1),     # no report: the worker never got far enough to say
    ("TIMED_OUT", True, True, 1),   # hours already spent: never a second run
    ("STOPPED", True, True, 1),     # an operator stopped it on purpose
])
def test_a_failed_build_is_retried_once_only_when_its_report_says_retryable(
        stack, slack, notifier_app, retry_waits, status, retryable, report, builds_run):
    builds = SimulatedBuilds(fail_groups={"crm"}, retryable=retryable, failed_status=status,
                             write_report=report)
    desc, events = run([{"name": "crm", "tables": ["public.customers"]}], builds, notifier_app)
    assert desc["status"] == "FAILED"
    assert len(builds.calls) == builds_run
    out = json.loads([e for e in events if e["type"] == "MapStateExited"][-1][
        "stateExitedEventDetails"]["output"])
    (crm,) = out["groups"]
    assert crm["error"] == f"build {status}" and crm["attempts"] == builds_run
    assert len(slack.requests) == 1
