"""`timings --from-logs` / `history --from-logs`: CloudWatch Logs Insights.

moto accepts StartQuery but evaluates no `stats` (it returns raw events), so it shows the
wiring (log group, exact query text, time range, errors); a small stand-in client returning
what Logs Insights returns for these queries shows the parsing and the critical path.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import boto3
import pytest

from nightcopy.aws.logs_queries import SLOWEST_TABLES_QUERY, TABLE_TIMINGS_QUERY
from nightcopy.cli.render import console, render_history, render_timings
from nightcopy.ops.history_from_logs import (
    GROUP_FINISH_QUERY,
    for_run,
    history_from_logs,
    timings_from_logs,
)

LOG_GROUP = "/aws/codebuild/nightcopy"


@pytest.fixture
def logs(moto_aws):
    client = boto3.client("logs")
    client.create_log_group(logGroupName=LOG_GROUP)
    client.create_log_stream(logGroupName=LOG_GROUP, logStreamName="build-1")
    now = int(time.time() * 1000)
    lines = [{"event": "table_copied", "run_id": "nightly-2026-11-25", "group": "g1",
              "table": "public.orders", "rows": 10, "bytes": 100, "seconds": 1.5},
             {"event": "run_summary", "run_id": "nightly-2026-11-25", "group": "g1",
              "status": "succeeded", "tables": 1, "failed": 0, "seconds": 2.0}]
    client.put_log_events(logGroupName=LOG_GROUP, logStreamName="build-1", logEvents=[
        {"timestamp": now - 1000 + i, "message": json.dumps(line)}
        for i, line in enumerate(lines)])
    return client


def test_timings_from_logs_sends_the_saved_query_narrowed_to_the_run(nc, logs):
    r = nc("timings", "--from-logs", "--log-group", LOG_GROUP, "--run-id", "nightly-2026-11-25")
    # moto cannot run `stats`, so no rows come back: a clear one-line error, exit 1 ...
    assert r.exit_code == 1
    assert "left no table_copied lines in /aws/codebuild/nightcopy" in r.stderr
    # ... but the queries sent are exactly the saved ones, narrowed to the run
    sent = [q["queryString"] for q in logs.describe_queries(logGroupName=LOG_GROUP)["queries"]]
    assert for_run(TABLE_TIMINGS_QUERY, "nightly-2026-11-25") in sent
    assert for_run(GROUP_FINISH_QUERY, "nightly-2026-11-25") in sent
    assert 'filter run_id = "nightly-2026-11-25"' in for_run(TABLE_TIMINGS_QUERY,
                                                             "nightly-2026-11-25").splitlines()[1]


def test_unknown_log_group_is_one_clear_line(nc, logs):
    r = nc("history", "--from-logs", "--log-group", "/aws/codebuild/nope")
    assert r.exit_code == 1
    assert "log group /aws/codebuild/nope does not exist" in r.stderr


class InsightsStandIn:
    """Answers like Logs Insights for the three queries nightcopy runs (after one poll)."""

    def __init__(self):
        self.started: list[dict] = []
        self.polls = 0

    def start_query(self, **kwargs):
        self.started.append(kwargs)
        return {"queryId": str(len(self.started) - 1)}

    def get_query_results(self, queryId):  # noqa: N803 - boto3's parameter name
        self.polls += 1
        query = self.started[int(queryId)]["queryString"]
        if self.polls % 2:  # every query is "Running" once first
            return {"status": "Running", "results": []}
        return {"status": "Complete", "results": [
            [{"field": k, "value": str(v)} for k, v in row.items()] + [{"field": "@ptr",
                                                                         "value": "x"}]
            for row in self._rows(query)]}

    @staticmethod
    def _rows(query: str) -> list[dict]:
        if query.startswith("filter event = \"run_summary\""):
            return [
                {"run_id": "nightly-2026-11-25", "group": "g2",
                 "finished": "2026-11-25 02:31:00.000", "status": "succeeded",
                 "seconds": "1860", "tables": "3", "failed": "0", "rows": "900", "bytes": "9000"},
                {"run_id": "nightly-2026-11-25", "group": "g1",
                 "finished": "2026-11-25 02:12:00.000", "status": "succeeded",
                 "seconds": "720", "tables": "2", "failed": "0", "rows": "100", "bytes": "1000"},
                {"run_id": "nightly-2026-11-24", "group": "g1",
                 "finished": "2026-11-24 02:40:00.000", "status": "failed",
                 "seconds": "2400", "tables": "2", "failed": "1", "rows": "50", "bytes": "500"},
            ]
        if query.startswith("fields @timestamp, run_id"):
            return [
                {"run_id": "nightly-2026-11-25", "group": "g2", "table": "public.events",
                 "seconds": "1500", "copy_seconds": "1400", "index_seconds": "90",
                 "rows": "800", "bytes": "8000"},
                {"run_id": "nightly-2026-11-25", "group": "g1", "table": "public.orders",
                 "seconds": "700", "copy_seconds": "650", "index_seconds": "40",
                 "rows": "90", "bytes": "900"},
            ]
        if query.startswith("filter event = \"table_copied\""):
            return [{"table": "public.events", "group": "g2", "avg_seconds": "1400",
                     "max_seconds": "1500", "avg_rows": "800", "nights": "7"}]
        raise AssertionError(query)


NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_timings_from_logs_latest_run_and_critical_path():
    fake = InsightsStandIn()
    t = timings_from_logs(LOG_GROUP, None, days=2, client=fake, now=NOW)
    assert t.run_id == "nightly-2026-11-25"  # the run that finished last
    assert [r.table for r in t.tables] == ["public.events", "public.orders"]
    assert t.critical_group.group == "g2"
    assert t.wall_seconds == pytest.approx(1860)  # g2 started 02:00, finished 02:31
    sent = [s["queryString"] for s in fake.started]
    assert sent == [GROUP_FINISH_QUERY, for_run(TABLE_TIMINGS_QUERY, "nightly-2026-11-25")]
    assert all(s["logGroupName"] == LOG_GROUP for s in fake.started)
    assert fake.started[0]["endTime"] - fake.started[0]["startTime"] == 2 * 86400
    con = console()
    with con.capture() as cap:
        render_timings(con, t)
    out = cap.get()
    assert "Critical path: group g2 finished last at +31m00s: public.events 25m00s" in out


def test_history_from_logs_lists_runs_and_slowest_tables():
    fake = InsightsStandIn()
    h = history_from_logs(LOG_GROUP, nights=7, client=fake, now=NOW)
    assert [r.run_id for r in h.runs] == ["nightly-2026-11-25", "nightly-2026-11-24"]
    assert h.runs[0].critical_group == "g2" and h.runs[1].status == "failed"
    assert h.tables[0].table == "public.events" and h.tables[0].runs == 7
    assert [s["queryString"] for s in fake.started] == [GROUP_FINISH_QUERY, SLOWEST_TABLES_QUERY]
    con = console()
    with con.capture() as cap:
        render_history(con, h)
    assert "g2 (31m00s)" in cap.get()


def test_a_failed_insights_query_is_a_clear_error():
    from nightcopy.errors import NightcopyError

    class Failing(InsightsStandIn):
        def get_query_results(self, queryId):  # noqa: N803
            return {"status": "Failed", "results": []}

    with pytest.raises(NightcopyError, match="query on /aws/codebuild/nightcopy ended Failed"):
        timings_from_logs(LOG_GROUP, "nightly-2026-11-25", client=Failing(), now=NOW)
