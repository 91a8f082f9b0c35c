"""The state machine's error paths other than a failed build: each ends FAILED with the group
named (in the Map's output and in the one Slack message), and a notifier outage never turns a
failed night into a successful one.

The stand-in for CodeBuild fails a task in the shapes AWS uses besides a failed build: a
States.TaskFailed whose cause is not a Build object (the build never started), an API error
(the project is gone), States.Timeout (the build ran past the task timeout).
"""

from __future__ import annotations

import json

import pytest
from aws_harness import TaskFailure, fake_build
from test_aws_statemachine import PROJECT, SimulatedBuilds, run


class FailingStart(SimulatedBuilds):
    """Builds of `group` fail with (error, cause) instead of running; the others copy."""

    def __init__(self, group: str, error: str, cause: str):
        super().__init__()
        self.group, self.error, self.cause = group, error, cause

    def __call__(self, params: dict) -> dict:
        env = {e["Name"]: e["Value"] for e in params["EnvironmentVariablesOverride"]}
        if env["NIGHTCOPY_GROUP"] == self.group:
            with self.lock:
                self.calls.append(env)
            raise TaskFailure(self.error, self.cause)
        return super().__call__(params)


def _map_output(events: list[dict]) -> dict[str, dict]:
    exited = [e for e in events if e["type"] == "MapStateExited"]
    out = json.loads(exited[-1]["stateExitedEventDetails"]["output"])
    return {g["group"]: g for g in out["groups"]}


GROUPS = [{"name": "sales", "tables": ["public.orders"]},
          {"name": "crm", "tables": ["public.customers"]}]


@pytest.mark.parametrize("error, cause, path, attempts, shown", [
    # The build could not start: a task failure without a Build object and without a worker
    # report to say it could pass; not retried (the throttling errors have their own Retry),
    # then TaskFailedWithoutBuild keeps the error name only (the cause's size is unknown).
    ("States.TaskFailed", "CodeBuild: the image could not be pulled " + "x" * 5000,
     "TaskFailedWithoutBuild", 1, "States.TaskFailed"),
    # An API error (the project is gone): in a Retry or Catch, States.TaskFailed matches every
    # error name but States.Timeout (as on AWS), so it takes the same path.
    ("CodeBuild.ResourceNotFoundException", "project nightcopy-worker not found",
     "TaskFailedWithoutBuild", 1, "CodeBuild.ResourceNotFoundException"),
    # The build ran past the task's timeout: only the States.ALL catch (GroupError) takes it,
    # with the (short) error object.
    ("States.Timeout", "the build ran past the task timeout", "GroupError", 1,
     "the build ran past the task timeout"),
])
def test_every_task_failure_shape_fails_the_night_naming_the_group(
        stack, slack, notifier_app, retry_waits, error, cause, path, attempts, shown):
    builds = FailingStart("crm", error, cause)
    desc, events = run(GROUPS, builds, notifier_app)

    assert desc["status"] == "FAILED"
    assert desc.get("error") == "nightcopy.GroupsFailed"
    entered = [e["stateEnteredEventDetails"]["name"] for e in events
               if e["type"].endswith("StateEntered")]
    assert path in entered, " ".join(entered)
    assert len([c for c in builds.calls if c["NIGHTCOPY_GROUP"] == "crm"]) == attempts
    groups = _map_output(events)
    assert groups["sales"]["status"] == "SUCCEEDED"  # the other group was not cancelled
    assert groups["crm"]["status"] == "FAILED"
    assert shown in json.dumps(groups["crm"]["error"])
    assert "x" * 1000 not in json.dumps(groups)  # a cause of unknown size is not carried
    # One Slack message, naming the group.
    assert len(slack.messages) == 1
    msg = slack.messages[0]
    assert "FAILED" in msg["text"] and "crm" in msg["text"]
    assert "*crm*" in json.dumps(msg["blocks"], ensure_ascii=False)


class NotifierDown:
    """The notifier Lambda failing on every call (Slack or the Lambda itself is down)."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []

    def handler(self, payload: dict, _context) -> dict:
        self.payloads.append(payload)
        raise RuntimeError("slack is down")


@pytest.mark.parametrize("fail_groups, verdict", [({"crm"}, "FAILED"), (set(), "SUCCEEDED")])
def test_a_notifier_outage_does_not_change_the_verdict(stack, slack, retry_waits, fail_groups,
                                                       verdict):
    notifier = NotifierDown()
    desc, events = run(GROUPS, SimulatedBuilds(fail_groups), notifier)
    assert desc["status"] == verdict
    if verdict == "FAILED":
        assert desc.get("error") == "nightcopy.GroupsFailed"
    # Retried (States.TaskFailed: 2 retries), then caught; the failure is kept in the output.
    assert len(notifier.payloads) == 3
    assert retry_waits[-2:] == [30, 60]  # the Notify task's waits (after any build retry)
    failed = [g["group"] for g in notifier.payloads[0]["groups"] if g["status"] == "FAILED"]
    assert failed == sorted(fail_groups)
    verdict_input = next(json.loads(e["stateEnteredEventDetails"]["input"]) for e in events
                         if e["type"] == "ChoiceStateEntered"
                         and e["stateEnteredEventDetails"]["name"] == "Verdict")
    assert "slack is down" in json.dumps(verdict_input["notify_error"])
    assert slack.messages == []


def test_fake_build_is_what_the_failed_build_path_parses():
    # The Build-shaped cause the other tests rely on (IsBuildFailure's StringMatches pattern).
    cause = json.dumps({"Build": fake_build(PROJECT, False)}, separators=(",", ":"))
    assert cause.startswith('{"Build":{')
