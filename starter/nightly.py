"""Naming and starting the nightly execution (shared by the starter Lambda and `nightcopy start`).

Execution names are `nightly-YYYY-MM-DD` (the date in the schedule's timezone); a deliberate rerun
of the same day gets the next free `-rN` (N >= 2) and a new run id (a new snapshot). Finishing a
failed night (`start_finishing`) takes the next free `-fN` (N >= 1): it copies only the night's
failed groups under the night's own run id, so each worker resumes its ledger. The input is the same every time for a date, so
StartExecution stays idempotent while that execution runs, and ExecutionAlreadyExists on a closed
execution means "this day already ran" - not an error.

Imports only the stdlib and botocore's error type (boto3 is in the Lambda runtime): this module
is installed as `nightcopy_starter.nightly` and is also the Lambda's top-level `nightly` module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore.exceptions import ClientError

PREFIX = "nightly-"
MAX_RERUNS = 99
_NAME_RE = re.compile(r"^nightly-(\d{4}-\d{2}-\d{2})(?:-r(\d+))?$")
FINISH_SUFFIX = "-f"
# A config failure (table_groups unreadable or empty) is reported as this pseudo-group.
CONFIG_GROUP = "table_groups"


class StartError(Exception):
    """The execution could not be started (message is safe to show; it carries no secrets)."""


@dataclass(frozen=True)
class StartResult:
    name: str
    execution_arn: str
    # "started": a new execution; "running": that day's execution is running (idempotent
    # start); "already_ran": that day's execution has finished (no new run without --rerun);
    # "complete" (finishing): the night has nothing left to finish (status: its run id)
    outcome: str
    status: str | None = None  # the existing execution's status for running/already_ran

    def describe(self) -> str:
        if self.outcome == "started":
            return f"started {self.name}"
        if self.outcome == "running":
            return f"{self.name} is already running"
        if self.outcome == "complete":
            return f"the night {self.status} is complete: nothing to finish"
        return (f"{self.name} already ran ({self.status}); "
                "use --rerun to copy that day again under a new name")


def execution_name(day: date, attempt: int = 1) -> str:
    """`nightly-2026-11-25` for the first run of a day, `nightly-2026-11-25-r2` for the second."""
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    base = f"{PREFIX}{day.isoformat()}"
    return base if attempt == 1 else f"{base}-r{attempt}"


def parse_execution_name(name: str) -> tuple[date, int] | None:
    """Inverse of execution_name, or None for names the starter did not make."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    return date.fromisoformat(m.group(1)), int(m.group(2) or 1)


def zone(tz_name: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise StartError(f"unknown timezone {tz_name!r} (use an IANA name like Europe/Berlin)") \
            from None


def local_date(instant: datetime | str | None, tz_name: str) -> date:
    """The calendar date of `instant` (default: now) in the schedule's timezone.

    EventBridge Scheduler passes the *scheduled* time (e.g. `2026-11-25T01:00:00Z`), so a late
    retry of the same schedule still names the same day.
    """
    if instant is None:
        instant = datetime.now(UTC)
    elif isinstance(instant, str):
        instant = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(zone(tz_name)).date()


def execution_input(day: date, **per_run: Any) -> str:
    """Deterministic per day (never a timestamp): a retried start must send the same input.

    per_run: the optional contract keys run_id, groups, options (None: left out); the nightly
    input has none of them."""
    payload: dict[str, Any] = {"date": day.isoformat()}
    payload.update({k: v for k, v in per_run.items() if v is not None})
    return json.dumps(payload, sort_keys=True)


def finish_name(day: date, n: int) -> str:
    """`nightly-2026-11-25-f1`: the n-th execution finishing that day's night."""
    if n < 1:
        raise ValueError("finishing executions count from 1")
    return f"{PREFIX}{day.isoformat()}{FINISH_SUFFIX}{n}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    # arn:aws:states:REGION:ACCOUNT:stateMachine:SM -> ...:execution:SM:NAME
    parts = state_machine_arn.split(":")
    if len(parts) < 7 or parts[5] != "stateMachine":
        raise StartError(f"not a state machine ARN: {state_machine_arn}")
    return ":".join([*parts[:5], "execution", parts[6], name])


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _describe(sfn: Any, arn: str) -> dict | None:
    try:
        return sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        if _error_code(exc) == "ExecutionDoesNotExist":
            return None
        raise


def start_nightly(sfn: Any, state_machine_arn: str, day: date, *, rerun: bool = False) \
        -> StartResult:
    """Start the day's execution; with rerun=True start the next free `-rN` name instead.

    `sfn` is a boto3 Step Functions client.
    """
    payload = execution_input(day)
    if not rerun:
        name = execution_name(day)
        arn = execution_arn(state_machine_arn, name)
        # Look first: for a running execution AWS would answer StartExecution with success
        # (idempotent), which would read as "started" although nothing new started.
        existing = _describe(sfn, arn)
        if existing is None:
            try:
                resp = sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                                           input=payload)
                return StartResult(name, resp["executionArn"], "started")
            except ClientError as exc:
                if _error_code(exc) != "ExecutionAlreadyExists":
                    raise StartError(f"could not start {name}: {_error_code(exc)}") from None
            existing = _describe(sfn, arn) or {}  # lost a race with another starter
        status = existing.get("status")
        return StartResult(name, arn, "running" if status == "RUNNING" else "already_ran", status)

    for attempt in range(1, MAX_RERUNS + 1):
        name = execution_name(day, attempt)
        arn = execution_arn(state_machine_arn, name)
        existing = _describe(sfn, arn)
        if existing is not None:
            if existing.get("status") == "RUNNING":
                # Two runs of one day at once would fight over the same tables.
                raise StartError(f"{name} is still running; wait for it or stop it first")
            continue
        try:
            resp = sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                                       input=payload)
        except ClientError as exc:
            if _error_code(exc) == "ExecutionAlreadyExists":
                continue  # someone else took this name a moment ago
            raise StartError(f"could not start {name}: {_error_code(exc)}") from None
        return StartResult(name, resp["executionArn"], "started")
    raise StartError(f"no free rerun name left for {day.isoformat()} (tried {MAX_RERUNS})")


def _night_run(sfn: Any, state_machine_arn: str, day: date) -> tuple[str, dict]:
    """The day's run id (its latest `nightly-DATE[-rN]`) and that execution's description."""
    found: tuple[str, dict] | None = None
    for attempt in range(1, MAX_RERUNS + 1):
        name = execution_name(day, attempt)
        desc = _describe(sfn, execution_arn(state_machine_arn, name))
        if desc is None:
            break
        found = (name, desc)
    if found is None:
        raise StartError(f"no night ran on {day.isoformat()} ({execution_name(day)} does not "
                         "exist): start it with `nightcopy start --date "
                         f"{day.isoformat()}`")
    return found


def _group_results(sfn: Any, arn: str) -> list[dict] | None:
    """The per-group results of a closed execution (its Summarize state's output), or None
    when it never got there (timed out or aborted inside the Map)."""
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=arn, reverseOrder=True)
    for page in pages:
        for event in page["events"]:
            details = event.get("stateExitedEventDetails") or {}
            if details.get("name") == "Summarize":
                groups = json.loads(details.get("output") or "{}").get("groups")
                return groups if isinstance(groups, list) else None
    return None


def failed_groups(results: list[dict] | None) -> list[str] | None:
    """The group names to finish; None for "every group" (no results, or a config failure:
    the ledger still skips every table the night copied)."""
    if results is None:
        return None
    names = [str(g.get("group")) for g in results if g.get("status") == "FAILED"]
    return None if CONFIG_GROUP in names else names


def start_finishing(sfn: Any, state_machine_arn: str, day: date, *,
                    options: dict[str, Any] | None = None) -> StartResult:
    """Finish DAY's failed night: start `nightly-DATE-fN` copying only the groups that failed
    in the night's latest execution, under the night's run id.

    The night's latest execution is its last finishing execution of that run id, else the
    night's own `nightly-DATE[-rN]`. Refused while one of them runs; "complete" when the latest
    succeeded. options: worker options for this run (the caller checked them)."""
    run_id, latest = _night_run(sfn, state_machine_arn, day)
    free = None
    for n in range(1, MAX_RERUNS + 1):
        name = finish_name(day, n)
        desc = _describe(sfn, execution_arn(state_machine_arn, name))
        if desc is None:
            free = n
            break
        if json.loads(desc.get("input") or "{}").get("run_id") == run_id:
            latest = desc
    if free is None:
        raise StartError(f"no free finishing name left for {day.isoformat()} (tried "
                         f"{MAX_RERUNS})")
    if latest.get("status") == "RUNNING":
        raise StartError(f"{latest.get('name')} is still running; wait for it to finish first")
    if latest.get("status") == "SUCCEEDED":
        return StartResult(latest.get("name", run_id), latest["executionArn"], "complete",
                           run_id)
    groups = failed_groups(_group_results(sfn, latest["executionArn"]))
    name = finish_name(day, free)
    payload = execution_input(day, run_id=run_id, groups=groups or None, options=options)
    try:
        resp = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)
    except ClientError as exc:
        raise StartError(f"could not start {name}: {_error_code(exc)}") from None
    return StartResult(name, resp["executionArn"], "started")
