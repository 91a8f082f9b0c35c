"""A nightly schedule's local time that does not exist on some night (a DST gap).

EventBridge Scheduler documents that "when time shifts forward in the Spring, if a cron
expression falls on a non-existent date and time, your schedule invocation is skipped" (User
Guide, "Schedule types", Daylight savings time). `cron(30 2 * * ? *)` in Europe/Berlin therefore
has no night on the last Sunday of March. `nightcopy validate` refuses such a schedule, naming
the next skipped night and the fix. (On the fall-back night the schedule runs once: harmless.)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# cron(minutes hours day-of-month month day-of-week year): only fixed minute and hour values
# name a local time that can fall into a gap; lists, ranges and steps are checked per value.
_CRON = re.compile(r"^cron\(\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+(?:\s+\S+)?\s*\)$")


def _values(field: str, high: int) -> list[int] | None:
    if field in ("*", "?") or "/" in field or "-" in field:
        return None if field in ("*", "?") else _expand(field, high)
    try:
        return [int(v) for v in field.split(",")]
    except ValueError:
        return None


def _expand(field: str, high: int) -> list[int] | None:
    out: list[int] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        lo, _, hi = base.partition("-")
        try:
            start = 0 if lo == "*" else int(lo)
            end = high if lo == "*" else int(hi or (high if step else lo))
            out += list(range(start, end + 1, int(step or 1)))
        except ValueError:
            return None
    return out


def _exists(day: date, hour: int, minute: int, zone: ZoneInfo) -> bool:
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    back = local.astimezone(UTC).astimezone(zone)
    return (back.hour, back.minute) == (hour, minute)


def dst_gap_problem(expression: str, tz_name: str, *, today: date | None = None,
                    days: int = 366) -> str | None:
    """A one-line problem when a local time of the schedule does not exist on some night in
    the next `days` days, else None (also for rate() and for times it cannot read)."""
    m = _CRON.match(expression.strip())
    if not m:
        return None
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    minutes, hours = _values(m.group(1), 59), _values(m.group(2), 23)
    if not minutes or not hours:
        return None
    start = today or datetime.now(UTC).date()
    for offset in range(days):
        day = start + timedelta(days=offset)
        for hour in hours:
            for minute in minutes:
                if not _exists(day, hour, minute, zone):
                    return (f"schedule {expression} in {tz_name}: {hour:02d}:{minute:02d} does "
                            f"not exist on {day.isoformat()} (clocks go forward), and EventBridge "
                            "Scheduler skips that night: pick a time from 04:00 local on (e.g. "
                            "cron(30 4 * * ? *)) or ScheduleTimezone=UTC")
    return None
