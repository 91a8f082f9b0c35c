"""The Logs Insights queries run over the worker's real JSON lines (tests/ops/insights_subset.py
interprets the commands they use), so a renamed event field, a misspelt command or an
aggregation the parsers do not expect fails here. (test_logs.py shows the wiring against moto,
which accepts StartQuery but evaluates no `stats`.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from insights_subset import InsightsClient, InsightsSyntaxError, run_query

from nightcopy.aws.logs_queries import (
    FAILURES_QUERY,
    SAVED_QUERIES,
    SLOWEST_TABLES_QUERY,
    TABLE_TIMINGS_QUERY,
)
from nightcopy.ops.history_from_logs import (
    GROUP_FINISH_QUERY,
    for_run,
    history_from_logs,
    timings_from_logs,
)

LOG_GROUP = "/aws/codebuild/nightcopy"


@pytest.fixture
def nights(cli, dbs) -> list[dict]:
    """The events of two real nights: g1 (two tables) and g2 (one good, one failing table)."""
    dbs.source.execute("""
        CREATE TABLE public.orders (id int); INSERT INTO public.orders SELECT generate_series(1, 300);
        CREATE TABLE public.items (id int); INSERT INTO public.items SELECT generate_series(1, 20);
        CREATE TABLE public.crm (id int); INSERT INTO public.crm SELECT generate_series(1, 5);
        CREATE TABLE public.blocked (id int);""")
    dbs.target.execute("CREATE TABLE public.blocked (id int);"
                       "CREATE RULE blocked_rule AS ON DELETE TO public.blocked DO INSTEAD NOTHING")
    events: list[dict] = []
    for night, shift in (("nightly-2026-11-24", 86400.0), ("nightly-2026-11-25", 0.0)):
        for group, tables in (("g1", "public.orders,public.items"),
                              ("g2", "public.crm,public.blocked")):
            r = cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
                     tables, "--run-id", night, "--group", group])
            assert r.returncode == (0 if group == "g1" else 1), r.stderr
            # the first night happened a day earlier
            events += [{**e, "ts": e["ts"] - shift} for e in r.events]
    return events


def test_every_query_runs_over_real_worker_events(nights):
    for query in [*SAVED_QUERIES.values(), GROUP_FINISH_QUERY,
                  for_run(TABLE_TIMINGS_QUERY, "nightly-2026-11-25")]:
        run_query(query, nights)  # no InsightsSyntaxError, no unknown field
    timings = run_query(for_run(TABLE_TIMINGS_QUERY, "nightly-2026-11-25"), nights)
    assert sorted(r["table"] for r in timings) == ["public.crm", "public.items", "public.orders"]
    assert all(float(r["seconds"]) > 0 and r["run_id"] == "nightly-2026-11-25" for r in timings)
    slowest = run_query(SLOWEST_TABLES_QUERY, nights)
    assert {r["table"]: r["nights"] for r in slowest} == {
        "public.orders": "2", "public.items": "2", "public.crm": "2"}
    failures = run_query(FAILURES_QUERY, nights)
    assert {r.get("table") for r in failures if r.get("table")} == {"public.blocked"}
    assert any("blocked_rule" in r.get("error", "") for r in failures)
    assert sum(1 for r in failures if r.get("failed_tables")) == 2  # the failed runs' summaries


def test_timings_and_history_from_logs_over_real_events(nights):
    now = datetime.fromtimestamp(max(e["ts"] for e in nights), tz=UTC) + timedelta(minutes=5)
    client = InsightsClient(nights)
    t = timings_from_logs(LOG_GROUP, None, days=2, client=client, now=now)
    assert t.run_id == "nightly-2026-11-25"  # the run that finished last
    assert sorted(r.table for r in t.tables) == ["public.crm", "public.items", "public.orders"]
    assert t.critical_group is not None and t.critical_group.group in ("g1", "g2")
    h = history_from_logs(LOG_GROUP, nights=7, client=InsightsClient(nights), now=now)
    assert [r.run_id for r in h.runs] == ["nightly-2026-11-25", "nightly-2026-11-24"]
    assert all(r.status == "failed" for r in h.runs)  # g2 failed both nights
    assert {x.table: x.runs for x in h.tables} == {
        "public.orders": 2, "public.items": 2, "public.crm": 2}


def test_the_interpreter_rejects_what_logs_insights_would():
    for bad in ['filter event == "x"', "fields a | stats median(x) as m by a",
                "filter event = \"x\"\n| sortt x desc", "stats count(*) as n by t\n| sort m asc"]:
        with pytest.raises(InsightsSyntaxError):
            run_query(bad, [{"event": "x", "t": 1, "a": 1, "x": 1, "ts": 0}])
