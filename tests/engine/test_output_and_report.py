"""stdout is JSON lines; --report-uri writes the notifier's report file."""

from __future__ import annotations

import json


def test_json_events_and_report_file(copy, dbs, tmp_path):
    dbs.source.execute('CREATE TABLE public."Order Items" (id int PRIMARY KEY);'
                       'INSERT INTO public."Order Items" SELECT generate_series(1, 42)')
    result = copy('public."Order Items"', "--group", "g1", "--run-id", "r1",
                  "--report-uri", f"file://{tmp_path}")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)  # stdout is JSON lines only
    event = result.events_of("table_copied")[0]
    assert event["table"] == 'public."Order Items"' and event["rows"] == 42
    assert event["group"] == "g1" and event["run_id"] == "r1" and event["bytes"] > 0
    assert {"seconds", "copy_seconds", "index_seconds"} <= set(event)
    report = json.loads((tmp_path / "r1" / "g1.json").read_text())
    assert report["status"] == "succeeded" and report["rows"] == 42
    assert report["results"][0]["table"] == 'public."Order Items"'
