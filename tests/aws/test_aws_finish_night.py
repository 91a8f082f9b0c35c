"""Finishing a failed night, offline and end to end: the real ASL in moto, the real worker per
build, the real notifier; `nightcopy start --finish DATE` starts the finishing execution.

A night with one failed group, then `nightly-DATE-f1` copies only that group, under the night's
run id (its worker resumes the ledger and skips the table it had copied), and its Slack message
says which night it completes and that the night is now complete.
"""

from __future__ import annotations

import json

import boto3
from aws_harness import ACCOUNT, integrations, load_asl, wait_for_execution
from click.testing import CliRunner
from test_aws_end_to_end import BUCKET, NOTIFIER, PREFIX, PROJECT, RUN, night, report  # noqa: F401

from nightcopy.cli.main import main

GROUPS = [{"name": "ok", "tables": ["sales.*"]},
          {"name": "bad", "tables": ["public.customers", "public.blocked"]}]
SUBSTITUTIONS = {"MapConcurrency": "2", "BuildTaskTimeoutSeconds": "600", "SsmPrefix": PREFIX,
                 "ProjectName": PROJECT, "ReportUri": f"s3://{BUCKET}/reports",
                 "ReportBucket": BUCKET, "ReportPrefix": "reports",
                 "NotifierFunctionArn": NOTIFIER, "Partition": "aws", "RetryWaitSeconds": "0"}


def _start_finish(arn: str, *extra: str) -> str:
    result = CliRunner().invoke(main, ["start", "--finish", "2026-11-25", "--state-machine-arn",
                                       arn, "--timezone", "UTC", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_finish_copies_only_the_failed_group_resumed_and_reports_the_night_complete(
        night, slack, notifier_app, retry_waits):  # noqa: F811 - the fixture, imported
    dbs, builds = night
    # an object of another kind under a listed name: that table fails, the rest is copied
    dbs.target.execute("CREATE VIEW public.blocked AS SELECT 1 AS id")
    sfn = boto3.client("stepfunctions")
    boto3.client("ssm").put_parameter(Name=f"{PREFIX}/table_groups", Value=json.dumps(GROUPS),
                                      Type="String", Overwrite=True)
    with integrations(builds, {NOTIFIER: notifier_app.handler}):
        arn = sfn.create_state_machine(name="nightcopy", definition=load_asl(SUBSTITUTIONS),
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")[
            "stateMachineArn"]
        first = sfn.start_execution(stateMachineArn=arn, name=RUN,
                                    input=json.dumps({"date": "2026-11-25"}))["executionArn"]
        assert wait_for_execution(sfn, first, timeout=180)["status"] == "FAILED"
        night_builds = len(builds.builds)
        assert report("bad")["status"] == "failed"

        # the operator fixes the cause, then finishes the night (a per-run option on the way)
        dbs.target.execute("DROP VIEW public.blocked")
        out = _start_finish(arn, "--options", '{"verify": "checksum"}')
        assert "started nightly-2026-11-25-f1" in out
        finishing = f"{arn.replace(':stateMachine:', ':execution:')}:nightly-2026-11-25-f1"
        desc = wait_for_execution(sfn, finishing, timeout=180)
        assert desc["status"] == "SUCCEEDED", [b["stderr"] for b in builds.builds]
        assert json.loads(desc["input"]) == {"date": "2026-11-25", "run_id": RUN,
                                             "groups": ["bad"], "options": {"verify": "checksum"}}
        # nothing left to finish: said, not started again
        assert "is complete: nothing to finish" in _start_finish(arn)

    # only the failed group ran again, as the night's run: it skipped what the night copied
    again = builds.builds[night_builds:]
    assert [b["env"]["NIGHTCOPY_GROUP"] for b in again] == ["bad"]
    (build,) = again
    assert build["env"]["NIGHTCOPY_RUN_ID"] == RUN
    assert json.loads(build["env"]["NIGHTCOPY_EXECUTION_OPTIONS"]) == {"verify": "checksum"}
    events = build["events"]
    assert [e["table"] for e in events if e["event"] == "table_skipped"] == ["public.customers"]
    assert [e["table"] for e in events if e["event"] == "table_copied"] == ["public.blocked"]
    assert [e["verify"] for e in events if e["event"] == "run_started"] == ["checksum"]
    assert dbs.target.scalar("SELECT count(*) FROM public.blocked") == 2
    assert report("bad")["status"] == "succeeded" and report("ok")["status"] == "succeeded"

    # two messages: the night's failure, then the finishing one naming the night it completes
    assert len(slack.requests) == 2
    finish_msg = slack.messages[1]
    assert finish_msg["text"].startswith(
        f"nightcopy nightly-2026-11-25-f1 finished night {RUN}: the night is complete "
        "(copied again: bad)")
    assert "night nightly-2026-11-25: complete" in json.dumps(finish_msg["blocks"])
    assert dbs.source.dsn not in json.dumps(slack.requests)


def test_finish_refuses_a_night_that_never_ran_and_bad_options(moto_aws):
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(name="nightcopy", definition=load_asl(SUBSTITUTIONS),
                                   roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
    runner = CliRunner()
    base = ["start", "--finish", "2026-11-25", "--state-machine-arn", arn, "--timezone", "UTC"]
    result = runner.invoke(main, base)
    assert result.exit_code == 1
    assert "no night ran on 2026-11-25" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, [*base, "--options", '{"source_dsn": "postgresql://x"}'])
    assert result.exit_code == 1
    assert "option source_dsn cannot be set in options" in result.output
    assert "postgresql://x" not in result.output
    result = runner.invoke(main, [*base, "--options", '{"jobs": 100}'])
    assert result.exit_code == 1 and "option jobs must be a number from 1 to 64" in result.output
    result = runner.invoke(main, [*base, "--rerun"])
    assert result.exit_code == 2
