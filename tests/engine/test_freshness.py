"""Freshness (issue 17): a table's newest row reported each night, a warning when stale."""

from __future__ import annotations

import json

import pytest

from nightcopy.engine.tablelist import parse_table_list
from nightcopy.errors import ConfigError

SOURCE_SQL = """
CREATE TABLE public.orders (id int PRIMARY KEY, updated_at timestamptz, note text);
INSERT INTO public.orders VALUES (1, now() - interval '5 days', 'a'),
                                 (2, now() - interval '3 days', 'b');
CREATE TABLE public.events (id int, created_at timestamp);
INSERT INTO public.events VALUES (1, (now() - interval '1 hour')::timestamp);
"""


def _entries(**by_table: dict) -> str:
    return json.dumps([{"table": t, **s} for t, s in by_table.items()])


@pytest.mark.parametrize("strategy", ["swap", "truncate"])
def test_the_newest_row_is_reported_and_a_stale_table_warned(copy, dbs, strategy):
    dbs.source.execute(SOURCE_SQL)
    tables = _entries(**{"public.orders": {"freshness_column": "updated_at", "max_age": "2d"},
                         "public.events": {"freshness_column": "created_at", "max_age": "36h"}})
    for _night in (1, 2):  # night 2 under truncate loads in place
        result = copy(tables, "--strategy", strategy)
        assert result.returncode == 0, result.stderr  # a warning fails nothing
    fresh = {e["table"]: e for e in result.events_of("table_freshness")}
    orders, events = fresh["public.orders"], fresh["public.events"]
    assert orders["column"] == "updated_at" and orders["stale"] is True
    assert 3 * 86400 - 60 < orders["age_seconds"] < 3 * 86400 + 600
    assert orders["max_age_seconds"] == 2 * 86400 and orders["newest"].endswith("Z")
    assert events["stale"] is False and 3500 < events["age_seconds"] < 4200
    warnings = [e["message"] for e in result.events_of("warning")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("public.orders: its newest updated_at is ")
    assert "3.0 days old, more than max_age 2d: the source may have stopped" in warnings[0]


def test_an_empty_table_or_a_wrong_column_is_a_warning(copy, dbs):
    dbs.source.execute("CREATE TABLE public.quiet (id int, seen date, note text)")
    empty = copy(_entries(**{"public.quiet": {"freshness_column": "seen", "max_age": "1w"}}))
    assert empty.returncode == 0, empty.stderr
    assert empty.events_of("table_freshness")[0]["newest"] is None
    assert "public.quiet: it has no rows, more than max_age 1w" in empty.stderr
    wrong = copy(_entries(**{"public.quiet": {"freshness_column": "note"}}))
    assert wrong.returncode == 0, wrong.stderr
    assert "freshness_column note is not a date or timestamp" in wrong.stderr
    assert wrong.events_of("table_freshness") == []


@pytest.mark.parametrize("item, message", [
    ({"table": "public.t", "max_age": "2d"}, "max_age needs freshness_column"),
    ({"table": "public.t", "freshness_column": "u", "max_age": "two days"},
     'max_age must be an age such as "90m", "36h", "2d" or "1w", not "two days"'),
    ({"table": "public.t", "freshness_column": ""}, "freshness_column must be a column name"),
])
def test_bad_freshness_settings_are_one_line(item, message):
    with pytest.raises(ConfigError) as err:
        parse_table_list([item])
    assert message in str(err.value)


def test_a_stale_table_is_in_the_report_file_and_the_slack_message(copy, dbs, tmp_path):
    from nightcopy_notifier.slack_message import build_report

    dbs.source.execute(SOURCE_SQL)
    tables = _entries(**{"public.orders": {"freshness_column": "updated_at", "max_age": "2d"},
                         "public.events": {"freshness_column": "created_at", "max_age": "36h"}})
    result = copy(tables, "--run-id", "night-1", "--group", "g1", "--report-uri",
                  tmp_path.as_uri())
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "night-1" / "g1.json").read_text())
    [stale] = report["stale_tables"]  # public.events is fresh: not listed
    assert stale["table"] == "public.orders" and stale["column"] == "updated_at"
    assert stale["max_age"] == "2d" and stale["newest"].endswith("Z")
    blocks = build_report([report], run_id="night-1")["blocks"]
    text = "\n".join(b["text"]["text"] for b in blocks if "text" in b)
    assert (f"*:warning: Stale source tables*\n• `public.orders`: newest updated_at "
            f"{stale['newest']}, older than max_age 2d") in text
