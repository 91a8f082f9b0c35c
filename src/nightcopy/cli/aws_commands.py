"""`nightcopy start` and `nightcopy watch`: the nightly execution from a terminal.

start: the same start the nightly schedule makes (name `nightly-YYYY-MM-DD`, the same input;
a day that already ran is reported, not repeated; `--rerun` takes the next free `-rN`).
watch: follows an execution the way the console graph shows it: one line per state change of
each group (Map iteration), with links to the builds' logs; exit 0 when it succeeded, 1 when it
failed, timed out or was aborted.

The state machine comes from --state-machine-arn / NIGHTCOPY_STATE_MACHINE_ARN, else from the
stack's StateMachineArn output (--stack / NIGHTCOPY_STACK, default "nightcopy").
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

import click

from nightcopy.errors import ConfigError, NightcopyError

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class AwsError(NightcopyError):
    """An AWS call failed (the message names the call and the error code)."""


class ExecutionFailed(NightcopyError):
    """The watched execution did not succeed."""


def _clients():
    import boto3
    import botocore.exceptions

    try:
        return boto3.client("stepfunctions"), boto3.client("cloudformation")
    except botocore.exceptions.NoRegionError:
        raise ConfigError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)") from None


def _call(what: str, fn, **kwargs) -> Any:
    import botocore.exceptions

    try:
        return fn(**kwargs)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise AwsError(f"{what}: {code}: {exc.response.get('Error', {}).get('Message', '')}") \
            from None
    except botocore.exceptions.NoCredentialsError:
        raise AwsError(f"{what}: no AWS credentials (set AWS_PROFILE or run aws configure)") \
            from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"{what}: {type(exc).__name__}") from None


@dataclass
class Target:
    state_machine_arn: str
    timezone: str


def resolve_target(cfn: Any, arn: str | None, stack: str, timezone: str | None) -> Target:
    outputs: dict[str, str] = {}
    if not arn or not timezone:
        try:
            stacks = _call(f"reading stack {stack}", cfn.describe_stacks, StackName=stack)
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
    return Target(arn, timezone or outputs.get("ScheduleTimezone") or "UTC")


def execution_console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
            f"#/v2/executions/details/{execution_arn}")


def build_logs_url(build_id: str, region: str) -> str:
    project = build_id.split(":", 1)[0]
    return (f"https://{region}.console.aws.amazon.com/codesuite/codebuild/projects/"
            f"{quote(project, safe='')}/build/{quote(build_id, safe='')}/log?region={region}")


_common = [
    click.option("--state-machine-arn", envvar="NIGHTCOPY_STATE_MACHINE_ARN",
                 help="The nightcopy state machine [default: the stack's output]."),
    click.option("--stack", envvar="NIGHTCOPY_STACK", default="nightcopy", show_default=True,
                 help="CloudFormation stack to read StateMachineArn/ScheduleTimezone from."),
    click.option("--timezone", envvar="NIGHTCOPY_SCHEDULE_TIMEZONE",
                 help="Timezone naming the day [default: the stack's ScheduleTimezone, else UTC]."),
]


def common(fn):
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


def _day(value: str | None, tz: str) -> date:
    from nightcopy_starter.nightly import StartError, local_date

    if value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"--date must be YYYY-MM-DD, not {value!r}") from None
    try:
        return local_date(None, tz)
    except StartError as exc:
        raise ConfigError(str(exc)) from None


@click.command("start")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The night to start [default: today "
              "in the schedule's timezone].")
@click.option("--rerun", is_flag=True, help="Copy that day again under the next free name "
              "(nightly-DATE-r2, -r3, ...) with a fresh snapshot.")
@common
def start(day: str | None, rerun: bool, state_machine_arn: str | None, stack: str,
          timezone: str | None) -> None:
    """Start the nightly execution now (what the schedule does at night)."""
    from nightcopy_starter.nightly import StartError, start_nightly

    sfn, cfn = _clients()
    target = resolve_target(cfn, state_machine_arn, stack, timezone)
    the_day = _day(day, target.timezone)
    try:
        result = start_nightly(sfn, target.state_machine_arn, the_day, rerun=rerun)
    except StartError as exc:
        raise NightcopyError(str(exc)) from None
    except Exception as exc:  # botocore errors from describe/start
        raise AwsError(f"starting {the_day}: {type(exc).__name__}: {exc}") from None
    click.echo(result.describe())
    click.echo(execution_console_url(result.execution_arn))
    if result.outcome != "already_ran":
        click.echo(f"follow it: nightcopy watch {result.name}")


# --- watch ---------------------------------------------------------------------------------

GROUP_STATES = {"NamedGroup", "NumberedGroup"}
DONE_STATES = {"GroupSucceeded": "SUCCEEDED", "BuildFailed": "FAILED",
               "TaskFailedWithoutBuild": "FAILED", "GroupError": "FAILED"}


@dataclass
class GroupView:
    index: int
    group: str | None = None
    status: str = "PENDING"
    attempts: int = 0
    build_id: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.group or f"#{self.index}"


class ExecutionView:
    """Folds the execution history into per-state and per-group status, as the graph shows."""

    def __init__(self, region: str):
        self.region = region
        self.iteration_of: dict[int, int] = {}  # event id -> Map iteration index
        self.groups: dict[int, GroupView] = {}
        self.current_state: str | None = None
        self.map_size: int | None = None

    def feed(self, event: dict) -> list[str]:
        """Apply one history event; returns human lines for what changed."""
        eid, prev, kind = event["id"], event.get("previousEventId"), event["type"]
        lines: list[str] = []
        if kind == "MapIterationStarted":
            idx = event["mapIterationStartedEventDetails"]["index"]
            self.iteration_of[eid] = idx
            self.groups.setdefault(idx, GroupView(idx))
            return lines
        idx = self.iteration_of.get(prev) if prev is not None else None
        if idx is not None:
            # the Map's own events after an iteration ends chain onto that iteration's last
            # event: an iteration's end must not pass its index on
            if not kind.startswith("MapIteration"):
                self.iteration_of[eid] = idx
            return self._feed_group(self.groups.setdefault(idx, GroupView(idx)), event)
        if kind == "MapStateStarted":
            self.map_size = event.get("mapStateStartedEventDetails", {}).get("length")
            lines.append(f"RunGroups: {self.map_size} groups")
        elif kind.endswith("StateEntered"):
            self.current_state = event["stateEnteredEventDetails"]["name"]
            lines.append(f"{self.current_state}: entered")
        elif kind.endswith("Failed") and "Execution" not in kind:
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            lines.append(f"{self.current_state}: {kind} {details.get('error', '')}".rstrip())
        return lines

    def _feed_group(self, g: GroupView, event: dict) -> list[str]:
        kind = event["type"]
        if kind == "PassStateExited":
            d = event["stateExitedEventDetails"]
            out = json.loads(d.get("output") or "{}")
            if d["name"] in GROUP_STATES:
                g.group = out.get("group")
            elif d["name"] in DONE_STATES:
                g.status = DONE_STATES[d["name"]]
                err = out.get("error")
                g.error = (err.get("Error") if isinstance(err, dict) else err) or None
                g.build_id = out.get("build_id") or g.build_id
                tail = f": {g.error}" if g.error else ""
                return [f"[{g.label}] {g.status.lower()}{tail}{self._logs(g)}"]
        elif kind == "TaskScheduled":
            g.attempts += 1
            g.status = "RUNNING"
            if g.attempts > 1:
                return [f"[{g.label}] retrying (attempt {g.attempts})"]
        elif kind == "TaskSubmitted":
            out = json.loads(event["taskSubmittedEventDetails"].get("output") or "{}")
            g.build_id = (out.get("Build") or {}).get("Id") or g.build_id
            return [f"[{g.label}] build started{self._logs(g)}"]
        elif kind == "TaskFailed":
            d = event["taskFailedEventDetails"]
            status = ""
            with contextlib.suppress(ValueError, AttributeError):  # cause is not always JSON
                status = json.loads(d.get("cause") or "{}").get("Build", {}).get("BuildStatus", "")
            return [f"[{g.label}] build attempt failed: {status or d.get('error', '')}"]
        elif kind == "TaskTimedOut":
            return [f"[{g.label}] build task timed out"]
        return []

    def _logs(self, g: GroupView) -> str:
        return f"  logs: {build_logs_url(g.build_id, self.region)}" if g.build_id else ""

    def summary(self) -> list[str]:
        rows = sorted(self.groups.values(), key=lambda g: g.index)
        width = max([len(g.label) for g in rows] + [5])
        lines = [f"{'group':<{width}}  {'status':<9}  attempts  build"]
        for g in rows:
            lines.append(f"{g.label:<{width}}  {g.status:<9}  {g.attempts:>8}  "
                         f"{g.build_id or '-'}")
        return lines


def _history_since(sfn: Any, arn: str, token: str | None) -> tuple[list[dict], str | None]:
    """New history events since the last page token (history only grows)."""
    events: list[dict] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    if token:
        kwargs["nextToken"] = token
    while True:
        page = _call("reading the execution history", sfn.get_execution_history, **kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events, None
        kwargs["nextToken"] = token = page["nextToken"]


@click.command("watch")
@click.argument("execution", required=False)
@click.option("--interval", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Print the current state and exit (no following).")
@common
def watch(execution: str | None, interval: float, once: bool, state_machine_arn: str | None,
          stack: str, timezone: str | None) -> None:
    """Follow an execution group by group [default: today's nightly-YYYY-MM-DD].

    Exit 0 when it succeeded, 1 when it failed, timed out or was aborted.
    """
    from nightcopy_starter.nightly import execution_arn, execution_name

    sfn, cfn = _clients()
    if execution and execution.startswith("arn:"):
        arn = execution
    else:
        target = resolve_target(cfn, state_machine_arn, stack, timezone)
        name = execution or execution_name(_day(None, target.timezone))
        arn = execution_arn(target.state_machine_arn, name)
    try:
        desc = _call(f"finding execution {arn.rsplit(':', 1)[-1]}", sfn.describe_execution,
                     executionArn=arn)
    except AwsError as exc:
        if "ExecutionDoesNotExist" in str(exc) and not execution:
            raise AwsError(f"{exc} (today's night has not started yet? `nightcopy start` "
                           "starts it)") from None
        raise
    view = ExecutionView(region=arn.split(":")[3])
    click.echo(f"{desc['name']}: {desc['status']}  {execution_console_url(arn)}")
    seen = 0
    while True:
        # re-read the whole history: cheap for a nightly run (~10 events per group) and
        # independent of how a service pages a growing history
        events, _ = _history_since(sfn, arn, None)
        for event in events[seen:]:
            for line in view.feed(event):
                stamp = event["timestamp"].strftime("%H:%M:%S") \
                    if hasattr(event.get("timestamp"), "strftime") else ""
                click.echo(f"{stamp}  {line}")
        seen = len(events)
        desc = _call("describing the execution", sfn.describe_execution, executionArn=arn)
        if desc["status"] in TERMINAL or once:
            break
        time.sleep(interval)
    for line in view.summary():
        click.echo(line)
    click.echo(f"{desc['name']}: {desc['status']}")
    if desc["status"] in TERMINAL - {"SUCCEEDED"}:
        failed = [g.label for g in view.groups.values() if g.status == "FAILED"]
        what = f" (failed groups: {', '.join(failed)})" if failed else ""
        raise ExecutionFailed(f"{desc['name']} {desc['status'].lower().replace('_', ' ')}{what}")
