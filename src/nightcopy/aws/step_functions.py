"""The deployed nightly state machine (boto3): find it, start a night, read an execution.

The state machine comes from --state-machine-arn / NIGHTCOPY_STATE_MACHINE_ARN, else from the
stack's StateMachineArn output; the day an execution is named after is in the schedule's
timezone (the stack's ScheduleTimezone output, else UTC). Naming and starting are shared with
the starter Lambda (nightcopy_starter.nightly), so `nightcopy start` starts what the schedule
would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from nightcopy.aws.errors import AwsError, aws_call, client
from nightcopy.errors import ConfigError, NightcopyError

# Execution statuses after which nothing changes any more.
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class NightlyStateMachine:
    """The nightcopy state machine, and the timezone its schedule names the days in."""

    arn: str
    schedule_timezone: str


def clients() -> tuple[Any, Any]:
    """(Step Functions, CloudFormation) clients, or a one-line error (no region, ...)."""
    return client("stepfunctions"), client("cloudformation")


def find_state_machine(cfn: Any, arn: str | None, stack: str,
                       timezone: str | None) -> NightlyStateMachine:
    """The state machine ARN and schedule timezone: as given, else the stack's outputs."""
    outputs: dict[str, str] = {}
    if not arn or not timezone:
        try:
            with aws_call(f"reading stack {stack}", "cloudformation"):
                stacks = cfn.describe_stacks(StackName=stack)
            outputs = {o["OutputKey"]: o["OutputValue"]
                       for o in stacks["Stacks"][0].get("Outputs", [])}
        except AwsError:
            if not arn:
                raise ConfigError(
                    f"state machine unknown: pass --state-machine-arn or set "
                    f"NIGHTCOPY_STATE_MACHINE_ARN, or deploy stack {stack!r} (--stack)") from None
    arn = arn or outputs.get("StateMachineArn")
    if not arn:
        raise ConfigError(f"stack {stack!r} has no StateMachineArn output")
    return NightlyStateMachine(arn, timezone or outputs.get("ScheduleTimezone") or "UTC")


def start_night(sfn: Any, machine: NightlyStateMachine, day: date, *, rerun: bool) -> Any:
    """Start DAY's execution as the schedule does (a day that ran is reported, not repeated;
    rerun: the next free -rN). Returns nightcopy_starter.nightly.StartResult."""
    from nightcopy_starter.nightly import StartError, start_nightly

    try:
        with aws_call(f"starting {day}", "stepfunctions"):
            return start_nightly(sfn, machine.arn, day, rerun=rerun)
    except StartError as exc:
        raise NightcopyError(str(exc)) from None


def finish_night(sfn: Any, machine: NightlyStateMachine, day: date,
                 options: dict[str, Any] | None) -> Any:
    """Start `nightly-DATE-fN`: only the night's failed groups, under its run id (resumed).
    Returns nightcopy_starter.nightly.StartResult (outcome "complete": nothing to finish)."""
    from nightcopy_starter.nightly import StartError, start_finishing

    try:
        with aws_call(f"finishing the night of {day}", "stepfunctions"):
            return start_finishing(sfn, machine.arn, day, options=options)
    except StartError as exc:
        raise NightcopyError(str(exc)) from None


def describe_execution(sfn: Any, execution_arn: str, doing: str) -> dict[str, Any]:
    with aws_call(doing, "stepfunctions"):
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
    return description


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's whole history so far, oldest event first (every page)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        with aws_call("reading the execution history", "stepfunctions"):
            page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def execution_console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
            f"#/v2/executions/details/{execution_arn}")


def build_logs_url(build_id: str, region: str) -> str:
    project = build_id.split(":", 1)[0]
    return (f"https://{region}.console.aws.amazon.com/codesuite/codebuild/projects/"
            f"{quote(project, safe='')}/build/{quote(build_id, safe='')}/log?region={region}")
