"""`nightcopy start` / `nightcopy watch` and the starter Lambda, against moto's Step Functions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import boto3
import pytest
from aws_harness import ACCOUNT, wait_for_execution
from click.testing import CliRunner
from nightly import StartError, execution_name, local_date, parse_execution_name
from test_aws_statemachine import SimulatedBuilds, run

from nightcopy.cli.main import main

QUICK = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
SLOW = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60,
                                                    "End": True}}})


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def machine(moto_aws, monkeypatch):
    def make(definition: str = QUICK, name: str = "nightcopy") -> str:
        arn = boto3.client("stepfunctions").create_state_machine(
            name=name, definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")["stateMachineArn"]
        monkeypatch.setenv("NIGHTCOPY_STATE_MACHINE_ARN", arn)
        return arn
    return make


def test_names():
    assert execution_name(date(2026, 11, 25)) == "nightly-2026-11-25"
    assert execution_name(date(2026, 11, 25), 3) == "nightly-2026-11-25-r3"
    assert parse_execution_name("nightly-2026-11-25-r3") == (date(2026, 11, 25), 3)
    assert parse_execution_name("nightly-2026-11-25") == (date(2026, 11, 25), 1)
    assert parse_execution_name("a1b2c3-uuid") is None
    # the scheduled instant names the day in the schedule's timezone (also across DST)
    assert local_date("2026-11-25T23:30:00Z", "Europe/Berlin") == date(2026, 11, 26)
    assert local_date("2026-11-25T23:30:00Z", "UTC") == date(2026, 11, 25)
    assert local_date("2026-03-29T00:30:00Z", "Europe/Berlin") == date(2026, 3, 29)
    assert local_date("2026-03-29T03:30:00Z", "America/Los_Angeles") == date(2026, 3, 28)
    with pytest.raises(StartError, match="unknown timezone"):
        local_date(None, "Mars/Olympus")


def test_start_then_already_ran_then_reruns(machine):
    arn = machine()
    sfn = boto3.client("stepfunctions")
    code, out = cli("start", "--date", "2026-11-25")
    assert code == 0, out
    assert out.splitlines()[0] == "started nightly-2026-11-25"
    ex_arn = f"{arn.replace(':stateMachine:', ':execution:')}:nightly-2026-11-25"
    desc = wait_for_execution(sfn, ex_arn)
    assert desc["status"] == "SUCCEEDED"
    assert json.loads(desc["input"]) == {"date": "2026-11-25"}  # same input every time

    code, out = cli("start", "--date", "2026-11-25")
    assert code == 0, out  # a day runs once: not an error
    assert "nightly-2026-11-25 already ran (SUCCEEDED); use --rerun" in out

    code, out = cli("start", "--date", "2026-11-25", "--rerun")
    assert code == 0 and out.splitlines()[0] == "started nightly-2026-11-25-r2"
    wait_for_execution(sfn, ex_arn + "-r2")
    code, out = cli("start", "--date", "2026-11-25", "--rerun")
    assert out.splitlines()[0] == "started nightly-2026-11-25-r3"
    names = sorted(e["name"] for e in sfn.list_executions(stateMachineArn=arn)["executions"])
    assert names == ["nightly-2026-11-25", "nightly-2026-11-25-r2", "nightly-2026-11-25-r3"]


def test_start_while_running_and_rerun_refused(machine):
    machine(SLOW)
    assert cli("start", "--date", "2026-11-25")[0] == 0
    code, out = cli("start", "--date", "2026-11-25")
    assert code == 0 and "nightly-2026-11-25 is already running" in out
    code, out = cli("start", "--date", "2026-11-25", "--rerun")
    assert code == 1
    assert "nightly-2026-11-25 is still running; wait for it or stop it first" in out


def test_start_without_a_state_machine_is_a_clear_error(moto_aws, monkeypatch):
    monkeypatch.delenv("NIGHTCOPY_STATE_MACHINE_ARN", raising=False)
    code, out = cli("start", "--stack", "nope")
    assert code == 1
    assert "state machine unknown: pass --state-machine-arn" in out


def test_start_rejects_a_bad_date(machine):
    machine()
    code, out = cli("start", "--date", "25.11.2026")
    assert code == 1 and "--date must be YYYY-MM-DD" in out


def test_starter_lambda_names_the_day_from_the_scheduled_time(machine, starter_app,
                                                              monkeypatch):
    arn = machine()
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("SCHEDULE_TIMEZONE", "Europe/Berlin")
    event = {"scheduled_time": "2026-11-25T23:30:00Z"}  # 00:30 on the 26th in Berlin
    first = starter_app.handler(event, None)
    assert first["name"] == "nightly-2026-11-26" and first["outcome"] == "started"
    wait_for_execution(boto3.client("stepfunctions"), first["executionArn"])
    again = starter_app.handler(event, None)  # Scheduler retried: not an error, no new run
    assert again == {"name": "nightly-2026-11-26", "executionArn": first["executionArn"],
                     "outcome": "already_ran"}


@pytest.mark.usefixtures("stack", "slack", "retry_waits")
def test_watch_follows_groups_and_exits_0_on_success(notifier_app):
    desc, _ = run([{"name": "sales", "tables": ["sales.*"]}, ["public.a"]], SimulatedBuilds(),
                  notifier_app)
    arn = desc["stateMachineArn"]
    code, out = cli("watch", "nightly-2026-11-25", "--state-machine-arn", arn, "--interval", "0.1")
    assert code == 0, out
    assert "nightly-2026-11-25: SUCCEEDED" in out.splitlines()[0]
    assert "RunGroups: 2 groups" in out
    assert ("[sales] build started  logs: https://eu-west-1.console.aws.amazon.com/codesuite/"
            "codebuild/projects/nightcopy-worker/build/nightcopy-worker%3A") in out
    assert "[sales] succeeded" in out and "[g2] succeeded" in out
    table = out[out.index("group "):].splitlines()
    assert table[1].split()[:3] == ["sales", "SUCCEEDED", "1"]
    assert table[2].split()[:3] == ["g2", "SUCCEEDED", "1"]
    assert out.rstrip().endswith("nightly-2026-11-25: SUCCEEDED")


@pytest.mark.usefixtures("stack", "slack", "retry_waits")
def test_watch_exits_1_and_names_failed_groups(notifier_app):
    desc, _ = run([{"name": "sales", "tables": ["public.a"]},
                   {"name": "crm", "tables": ["public.b"]}], SimulatedBuilds({"crm"}),
                  notifier_app)
    code, out = cli("watch", desc["executionArn"])
    assert code == 1
    assert "[crm] build attempt failed: FAILED" in out
    assert "[crm] retrying (attempt 2)" in out
    assert "[crm] failed: build FAILED" in out
    assert "nightcopy: error: nightly-2026-11-25 failed (failed groups: crm)" in out


def test_watch_defaults_to_todays_nightly_execution(machine, monkeypatch):
    machine()
    today = datetime.now(UTC).date()
    assert cli("start", "--timezone", "UTC")[0] == 0
    code, out = cli("watch", "--timezone", "UTC", "--interval", "0.1")
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"nightly-{today.isoformat()}: ")


def test_watch_of_an_unknown_execution_is_a_clear_error(machine):
    machine()
    code, out = cli("watch", "nightly-1999-01-01")
    assert code == 1 and "finding execution nightly-1999-01-01: ExecutionDoesNotExist" in out


@pytest.mark.usefixtures("stack", "slack", "retry_waits")
def test_watch_follows_a_running_execution_to_its_end(notifier_app):
    import threading
    import time as _time

    class SlowBuilds(SimulatedBuilds):
        def __call__(self, params):
            _time.sleep(1.0)  # long enough for watch to see the group running
            return super().__call__(params)

    done: dict = {}
    runner = threading.Thread(target=lambda: done.update(
        desc=run([{"name": "slow", "tables": ["public.a"]}], SlowBuilds(), notifier_app)[0]))
    runner.start()
    sfn = boto3.client("stepfunctions")
    arn = None
    for _ in range(100):  # until the execution exists
        machines = sfn.list_state_machines()["stateMachines"]
        if machines:
            executions = sfn.list_executions(stateMachineArn=machines[0]["stateMachineArn"])
            if executions["executions"]:
                arn = executions["executions"][0]["executionArn"]
                break
        _time.sleep(0.05)
    assert arn, "the execution did not start"
    code, out = cli("watch", arn, "--interval", "0.2")
    runner.join(timeout=60)
    assert code == 0, out
    assert out.splitlines()[0].startswith("nightly-2026-11-25: RUNNING")
    assert "[slow] build started" in out and "[slow] succeeded" in out
    assert out.rstrip().endswith("nightly-2026-11-25: SUCCEEDED")
    assert done["desc"]["status"] == "SUCCEEDED"


def test_watch_before_tonight_started_says_how_to_start_it(machine):
    machine()
    code, out = cli("watch", "--timezone", "UTC")
    assert code == 1
    assert "ExecutionDoesNotExist" in out and "`nightcopy start` starts it" in out
