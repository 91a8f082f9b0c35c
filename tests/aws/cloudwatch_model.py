"""The project's model of a CloudWatch metric alarm, for tests over template.yaml's alarms.

Not CloudWatch itself: a small evaluator of what the alarms rely on, written from the
PutMetricAlarm and "alarms and missing data" documentation. Time is a list of periods; a metric
is a list with a value (the period's statistic) or None (no datapoint published: AWS/States
publishes nothing in a period without that event). Metric math supports FILL(x, 0) and `+`
(what the template uses): FILL makes a period 0 where the metric published nothing. Each
evaluation looks at the last EvaluationPeriods periods (the real evaluation range is a few
periods longer); a missing one is breaching, not breaching or left out as TreatMissingData says,
and with `missing` a range with no datapoint at all is INSUFFICIENT_DATA; the alarm is in ALARM
when at least DatapointsToAlarm of them breach. A notification is a change into a state with
actions (they fire on the change, not while the state stays).
"""

from __future__ import annotations

import re
from typing import Any


def _value(tag_or_value: Any) -> Any:
    return getattr(tag_or_value, "value", tag_or_value)


def series(props: dict, metrics: dict[str, list[float | None]]) -> list[float | None]:
    """The alarm's evaluated series: its single metric, or its ReturnData expression.
    `metrics` is keyed by MetricName."""
    if "MetricName" in props:
        return metrics.get(props["MetricName"], [])
    by_id = {m["Id"]: m for m in props["Metrics"]}
    values = {i: metrics.get(m["MetricStat"]["Metric"]["MetricName"], [])
              for i, m in by_id.items() if "MetricStat" in m}
    [result] = [m for m in props["Metrics"] if m.get("ReturnData")]
    terms = [t.strip() for t in result["Expression"].split("+")]
    length = max((len(v) for v in values.values()), default=0)
    out: list[float | None] = []
    for p in range(length):
        total = 0.0
        for term in terms:
            m = re.fullmatch(r"FILL\((\w+), 0\)", term)
            assert m, f"expression not modelled: {term}"
            v = values[m.group(1)][p] if p < len(values[m.group(1)]) else None
            total += 0.0 if v is None else v
        out.append(total)
    return out


def _breaches(props: dict, value: float) -> bool:
    threshold = float(props["Threshold"])
    op = props["ComparisonOperator"]
    return {"GreaterThanThreshold": value > threshold,
            "LessThanThreshold": value < threshold,
            "GreaterThanOrEqualToThreshold": value >= threshold,
            "LessThanOrEqualToThreshold": value <= threshold}[op]


def notifications(props: dict, metrics: dict[str, list[float | None]]) -> list[int]:
    """The periods at which the alarm changes into a state that has actions: ALARM
    (AlarmActions) or INSUFFICIENT_DATA (InsufficientDataActions); one notification each.

    Period 0 is the alarm's creation (the stack's deploy): nothing was published before it, so
    the first windows reach back into missing periods, as a new alarm's do. The alarm starts in
    INSUFFICIENT_DATA, as CloudWatch creates it, and actions fire on a change of state only."""
    data = series(props, metrics)
    n = int(props["EvaluationPeriods"])
    m = int(props.get("DatapointsToAlarm", n))
    treat = props.get("TreatMissingData", "missing")
    acting = {state for state, key in (("ALARM", "AlarmActions"),
                                       ("INSUFFICIENT_DATA", "InsufficientDataActions"))
              if props.get(key)}
    state, fired = "INSUFFICIENT_DATA", []
    for end in range(len(data)):
        window = ([None] * n + data[: end + 1])[-n:]
        present = [v for v in window if v is not None]
        if not present and treat == "missing":
            new = "INSUFFICIENT_DATA"  # every datapoint of the range missing
        elif not present and treat == "ignore":
            new = state
        else:
            # breaching: a missing datapoint breaches; notBreaching: it does not; missing and
            # ignore: only the published ones count (all this template needs: its dead-man
            # alarm's published datapoints never breach)
            missing = len(window) - len(present)
            breaching = sum(_breaches(props, v) for v in present) + (
                missing if treat == "breaching" else 0)
            new = "ALARM" if breaching >= m else "OK"
        if new != state and new in acting:
            fired.append(end)
        state = new
    return fired
