"""`nightcopy watch`: an execution followed the way the console graph shows it.

One line per state change of each group (Map iteration), with links to the builds' logs; a
summary table at the end; ExecutionFailed when the execution failed, timed out or was aborted.
The history is read through nightcopy.aws.step_functions; here it is only interpreted.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nightcopy.aws.step_functions import (
    TERMINAL_STATUSES,
    build_logs_url,
    describe_execution,
    execution_console_url,
    execution_history,
)
from nightcopy.errors import NightcopyError


class ExecutionFailed(NightcopyError):
    """The watched execution did not succeed."""


# The ASL's states (statemachines/nightcopy.asl.json) that name a group, and those that end one.
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

    def __init__(self, region: str) -> None:
        self.region = region
        self.iteration_of: dict[int, int] = {}  # event id -> Map iteration index
        self.groups: dict[int, GroupView] = {}
        self.current_state: str | None = None
        self.map_size: int | None = None

    def feed(self, event: dict[str, Any]) -> list[str]:
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
            details: dict[str, Any] = next(
                (v for k, v in event.items() if k.endswith("EventDetails")), {})
            lines.append(f"{self.current_state}: {kind} {details.get('error', '')}".rstrip())
        return lines

    def _feed_group(self, g: GroupView, event: dict[str, Any]) -> list[str]:
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


def watch_execution(sfn: Any, execution_arn: str, *, interval: float, once: bool,
                    say: Callable[[str], None], hint_if_missing: str | None = None) -> None:
    """Print the execution's progress through `say` until it ends (or once, with `once`).

    hint_if_missing: appended when the execution does not exist (it was not named explicitly,
    so the operator may not have started it). Raises ExecutionFailed unless it succeeded.
    """
    from nightcopy.aws.errors import AwsError

    try:
        desc = describe_execution(sfn, execution_arn,
                                  f"finding execution {execution_arn.rsplit(':', 1)[-1]}")
    except AwsError as exc:
        if exc.code == "ExecutionDoesNotExist" and hint_if_missing:
            raise AwsError(f"{exc} ({hint_if_missing})", exc.code, exc.problem) from None
        raise
    view = ExecutionView(region=execution_arn.split(":")[3])
    say(f"{desc['name']}: {desc['status']}  {execution_console_url(execution_arn)}")
    seen = 0
    while True:
        # re-read the whole history: cheap for a nightly run (~10 events per group) and
        # independent of how a service pages a growing history
        events = execution_history(sfn, execution_arn)
        for event in events[seen:]:
            for line in view.feed(event):
                stamp = event["timestamp"].strftime("%H:%M:%S") \
                    if hasattr(event.get("timestamp"), "strftime") else ""
                say(f"{stamp}  {line}")
        seen = len(events)
        desc = describe_execution(sfn, execution_arn, "describing the execution")
        if desc["status"] in TERMINAL_STATUSES or once:
            break
        time.sleep(interval)
    for line in view.summary():
        say(line)
    say(f"{desc['name']}: {desc['status']}")
    if desc["status"] in TERMINAL_STATUSES - {"SUCCEEDED"}:
        failed = [g.label for g in view.groups.values() if g.status == "FAILED"]
        what = f" (failed groups: {', '.join(failed)})" if failed else ""
        raise ExecutionFailed(f"{desc['name']} {desc['status'].lower().replace('_', ' ')}{what}")
