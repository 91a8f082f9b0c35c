"""End to end, offline: the starter Lambda -> table_groups in SSM -> the real ASL in moto -> one real worker per group
(`nightcopy copy`, configured only by the build's environment overrides, as buildspec.yml runs it)
against two PostgreSQL servers -> reports in S3 -> the real notifier handler -> the local Slack.

The worker runs in-process (see aws_harness.py for why); it reads its DSNs from moto's SSM itself.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest
from aws_harness import (
    ACCOUNT,
    REGION,
    WorkerBuilds,
    history,
    integrations,
    load_asl,
    wait_for_execution,
)

PROJECT = "nightcopy-worker"
PREFIX = "/nightcopy/e2e"
BUCKET = "nightcopy-reports-e2e"
NOTIFIER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nightcopy-notifier"
RUN = "nightly-2026-11-25"

SOURCE_SQL = """
CREATE SCHEMA sales;
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.customers SELECT g, 'customer ' || g FROM generate_series(1, 300) g;
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2));
INSERT INTO public.orders SELECT g, g % 300 + 1, g * 1.5 FROM generate_series(1, 2000) g;
CREATE TABLE sales.items (sku text PRIMARY KEY, price numeric);
INSERT INTO sales.items SELECT 'sku-' || g, g FROM generate_series(1, 150) g;
CREATE TABLE sales.regions (code text PRIMARY KEY);
INSERT INTO sales.regions VALUES ('eu'), ('us');
CREATE TABLE public.blocked (id int PRIMARY KEY);
INSERT INTO public.blocked VALUES (1), (2);
"""


@pytest.fixture
def night(dbs, moto_aws, slack, notifier_app, retry_waits, monkeypatch):
    """What `sam deploy` + docs/aws.md's SSM commands set up, pointed at the test databases."""
    dbs.source.execute(SOURCE_SQL)
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{PREFIX}/source_dsn", Value=dbs.source.dsn, Type="SecureString")
    ssm.put_parameter(Name=f"{PREFIX}/target_dsn", Value=dbs.target.dsn, Type="SecureString")
    ssm.put_parameter(Name=f"{PREFIX}/slack_webhook_url", Value=slack.webhook_url,
                      Type="SecureString")
    boto3.client("s3").create_bucket(Bucket=BUCKET,
                                     CreateBucketConfiguration={"LocationConstraint": REGION})
    # the notifier Lambda's environment (template.yaml)
    monkeypatch.setenv("NIGHTCOPY_SSM_PREFIX", PREFIX)
    monkeypatch.setenv("NIGHTCOPY_REPORT_URI", f"s3://{BUCKET}/reports")
    # what the CodeBuild project gives every build besides the overrides (credentials, region)
    base_env = {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    return dbs, WorkerBuilds(PROJECT, base_env)


def execute(groups: list, builds: WorkerBuilds, notifier_app, starter_app=None) \
        -> tuple[dict, list[dict]]:
    """Run one night; with starter_app, started the way the schedule starts it."""
    sfn = boto3.client("stepfunctions")
    boto3.client("ssm").put_parameter(Name=f"{PREFIX}/table_groups", Value=json.dumps(groups),
                                      Type="String", Overwrite=True)
    subs = {"MapConcurrency": "2", "BuildTaskTimeoutSeconds": "600", "SsmPrefix": PREFIX,
            "ProjectName": PROJECT, "ReportUri": f"s3://{BUCKET}/reports",
            "NotifierFunctionArn": NOTIFIER}
    with integrations(builds, {NOTIFIER: notifier_app.handler}):
        arn = sfn.create_state_machine(name="nightcopy", definition=load_asl(subs),
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")[
            "stateMachineArn"]
        if starter_app is None:
            ex_arn = sfn.start_execution(stateMachineArn=arn, name=RUN,
                                         input=json.dumps({"date": "2026-11-25"}))["executionArn"]
        else:  # EventBridge Scheduler's event at 02:00 Europe/Berlin
            os.environ.update(STATE_MACHINE_ARN=arn, SCHEDULE_TIMEZONE="Europe/Berlin")
            started = starter_app.handler({"scheduled_time": "2026-11-25T01:00:00Z"}, None)
            assert started["name"] == RUN and started["outcome"] == "started"
            ex_arn = started["executionArn"]
        desc = wait_for_execution(sfn, ex_arn, timeout=180)
    return desc, history(sfn, ex_arn)


def report(group: str) -> dict:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"reports/{RUN}/{group}.json")["Body"]
    return json.loads(body.read())


def test_nightly_run_copies_every_group_and_posts_one_report(night, slack, notifier_app,
                                                             starter_app, monkeypatch):
    dbs, builds = night
    for key in ("STATE_MACHINE_ARN", "SCHEDULE_TIMEZONE"):  # restored after the test
        monkeypatch.setenv(key, "")
    desc, events = execute([{"name": "sales", "tables": ["sales.*"]},
                            {"name": "core", "tables": ["public.orders", "public.customers"]}],
                           builds, notifier_app, starter_app)
    assert desc["status"] == "SUCCEEDED", [b["stderr"] for b in builds.builds]

    # the tables really arrived
    assert dbs.target.scalar("SELECT count(*) FROM public.orders") == 2000
    assert dbs.target.scalar("SELECT sum(amount) FROM public.orders") == \
        dbs.source.scalar("SELECT sum(amount) FROM public.orders")
    assert dbs.target.scalar("SELECT count(*) FROM public.customers") == 300
    assert dbs.target.scalar("SELECT count(*) FROM sales.items") == 150
    assert dbs.target.scalar("SELECT count(*) FROM sales.regions") == 2
    assert dbs.target.scalar("SELECT to_regclass('public.blocked')") is None  # not listed

    # one build per group, each the worker's JSON events tagged with the execution's name
    assert sorted(b["env"]["NIGHTCOPY_GROUP"] for b in builds.builds) == ["core", "sales"]
    sales = builds.for_group("sales")[0]
    assert sales["returncode"] == 0
    copied = {e["table"]: e for e in sales["events"] if e["event"] == "table_copied"}
    assert set(copied) == {"sales.items", "sales.regions"}
    assert copied["sales.items"]["rows"] == 150
    assert {e["run_id"] for e in sales["events"]} == {RUN}
    assert {e["group"] for e in sales["events"]} == {"sales"}

    # the workers' reports, where the notifier reads them
    core = report("core")
    assert core["status"] == "succeeded" and core["rows"] == 2300 and core["run_id"] == RUN
    assert {r["table"]: r["status"] for r in core["results"]} == {
        "public.orders": "copied", "public.customers": "copied"}

    # exactly one Slack message: the report with real numbers
    assert len(slack.requests) == 1
    msg = slack.messages[0]
    assert msg["text"].startswith(f"nightcopy {RUN} succeeded: 2 groups, 4 tables, 2,452 rows")
    text = json.dumps(msg["blocks"])
    assert "public.orders" in text and "*core*" in text and "*sales*" in text

    # secrets never pass through the execution (input, output, any state's data) or Slack
    blob = json.dumps(events, default=str) + json.dumps(slack.requests)
    assert dbs.source.dsn not in blob and dbs.target.dsn not in blob


def test_failing_group_is_not_retried_on_a_refusal_and_fails_the_night_with_one_message(
        night, slack, notifier_app, retry_waits):
    dbs, builds = night
    # an object of another kind under a listed name: that table fails, the rest is copied
    dbs.target.execute("CREATE VIEW public.blocked AS SELECT 1 AS id")
    desc, events = execute([{"name": "ok", "tables": ["sales.*"]},
                            {"name": "bad", "tables": ["public.customers", "public.blocked"]}],
                           builds, notifier_app)

    assert desc["status"] == "FAILED"
    assert desc["error"] == "nightcopy.GroupsFailed"
    # the good group is untouched by the other's failure
    assert dbs.target.scalar("SELECT count(*) FROM sales.items") == 150
    assert len(builds.for_group("ok")) == 1
    # a view in the way fails the same way twice: the report says so and the build ran once
    (only,) = builds.for_group("bad")
    assert only["returncode"] == 1 and only["env"]["NIGHTCOPY_RUN_ID"] == RUN
    assert [e["table"] for e in only["events"] if e["event"] == "table_copied"] == [
        "public.customers"]
    assert report("bad")["retryable"] is False and report("bad")["schema_version"] == 2
    assert retry_waits == []
    # the failed table was left exactly as it was; the finished one stays copied
    assert dbs.target.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.blocked'::regclass") == "v"
    assert dbs.target.scalar("SELECT count(*) FROM public.customers") == 300

    bad = report("bad")
    assert bad["status"] == "failed" and bad["failed_tables"] == ["public.blocked"]

    # one message: the failure, naming the group, the table and its error, with links
    assert len(slack.requests) == 1
    msg = slack.messages[0]
    assert msg["text"] == f"nightcopy {RUN} FAILED: group bad"
    text = json.dumps(msg["blocks"])
    assert "*bad* failed" in text and "build FAILED" in text and "public.blocked" in text
    assert "build logs" in text and "execution graph" in text
    blob = json.dumps(events, default=str) + json.dumps(slack.requests)
    assert dbs.source.dsn not in blob and dbs.target.dsn not in blob
