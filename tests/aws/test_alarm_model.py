"""template.yaml's execution alarms over synthetic hourly metric series of normal and broken
weeks, evaluated by the project's model of CloudWatch (cloudwatch_model.py): each failure mode
raises exactly one notification, from the alarm meant for it, and a normal week none.

Hour 0 of each series is the deploy: the alarms start with no history, as a new alarm does.
"""

from __future__ import annotations

import pytest
from cloudwatch_model import notifications
from test_aws_template import RES

HOURS = 24 * 7
FAILED = RES["FailedAlarm"]["Properties"]
DEADMAN = RES["NoSuccessAlarm"]["Properties"]


def _week(start_hour: int = 2, *, skip: set[int] = frozenset(),
          ends: dict[int, str] | None = None, duration: dict[int, int] | None = None):
    """AWS/States per hour for a week of nights starting at start_hour (night index -> ...)."""
    metrics: dict[str, list[float | None]] = {k: [None] * HOURS for k in (
        "ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut",
        "ExecutionsAborted")}
    for night in range(7):
        if night in skip:
            continue
        start = night * 24 + start_hour
        if start >= HOURS:
            continue
        metrics["ExecutionsStarted"][start] = 1
        end = start + (duration or {}).get(night, 1)
        outcome = (ends or {}).get(night, "Succeeded")
        if end < HOURS:
            metrics[f"Executions{outcome}"][end] = 1
    return metrics


def _both(metrics) -> tuple[list[int], list[int]]:
    # the failed alarm's periods are 5 minutes: one hourly datapoint here stands for the
    # 5-minute period the event falls in (the others in that hour are empty)
    return notifications(FAILED, metrics), notifications(DEADMAN, metrics)


def test_a_normal_week_raises_nothing():
    assert _both(_week()) == ([], [])


def test_a_night_that_finishes_much_later_raises_nothing():
    # 45 minutes one night, 4 hours the next: the dead-man counts starts, not successes
    assert _both(_week(duration={2: 1, 3: 4})) == ([], [])


@pytest.mark.parametrize("outcome", ["Failed", "TimedOut", "Aborted"])
def test_a_failed_timed_out_or_aborted_night_raises_one_notification(outcome):
    failed, deadman = _both(_week(ends={3: outcome}))
    assert len(failed) == 1 and deadman == []  # and no dead-man alarm a day later


def test_a_night_that_never_started_raises_one_notification():
    failed, deadman = _both(_week(skip={4}))
    assert failed == [] and len(deadman) == 1
    assert deadman[0] > 4 * 24 + 2  # after the missed start, before the next night's
    assert deadman[0] < 5 * 24 + 2 + 1


def test_the_first_deploy_raises_nothing_before_a_night_was_due():
    """Deployed at 09:00, the first night at 02:00 the next day: 17 hours without a start (the
    breaching dead-man alarm fired 26 hours after the deploy, or before the first night when
    the deploy was earlier in the day)."""
    for deploy_hour in (0, 9, 23):
        metrics = _week(start_hour=26 - deploy_hour)
        assert _both(metrics) == ([], []), deploy_hour


def test_the_dead_man_alarm_speaks_through_insufficient_data():
    # a range with no start at all is INSUFFICIENT_DATA (TreatMissingData missing), and that
    # state change is what notifies; published datapoints (starts) never breach
    assert DEADMAN["TreatMissingData"] == "missing"
    assert [(t.tag, t.value) for t in DEADMAN["InsufficientDataActions"]] == [
        ("Ref", "AlarmTopic")]


def test_a_disabled_schedule_has_no_dead_man_alarm():
    # ScheduleState=DISABLED on purpose: the alarm is not created (Condition ScheduleEnabled)
    assert RES["NoSuccessAlarm"]["Condition"] == "ScheduleEnabled"
