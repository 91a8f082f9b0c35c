"""The report file: what the worker writes fits the declaration, and the notifier (which must
not import the engine) reads only declared fields."""

from __future__ import annotations

import json

from nightcopy_notifier.slack_message import build_report

from nightcopy.engine import event_schema as ev


class Recording(dict):
    """A dict that remembers which keys were read."""

    def __init__(self, data: dict, seen: set[str]):
        super().__init__(data)
        self.seen = seen

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)


def _report(group: str, status: str, results: list[dict]) -> dict:
    failed = [r["table"] for r in results if r["status"] == "failed"]
    return {"run_id": "nightly-2026-11-25", "group": group, "status": status,
            "tables": len(results), "failed": len(failed), "rows": 10, "bytes": 100,
            "seconds": 1.5, "failed_tables": failed, "started_at": "2026-11-25T02:00:00+00:00",
            "finished_at": "2026-11-25T02:00:02+00:00", "results": results}


def test_the_notifier_reads_only_declared_report_fields():
    copied = {"table": "public.a", "status": "copied", "rows": 10, "bytes": 100, "seconds": 1.0}
    failed = {"table": "public.b", "status": "failed", "rows": 0, "bytes": 0, "seconds": 0.1,
              "error": "boom"}
    top: set[str] = set()
    rows: set[str] = set()
    ok = _report("g1", "succeeded", [copied])
    bad = _report("g2", "failed", [failed])
    assert ev.report_problems(ok) == [] and ev.report_problems(bad) == []

    def wrap(report: dict) -> Recording:
        return Recording({**report, "results": [Recording(r, rows) for r in report["results"]]},
                         top)

    build_report([wrap(ok)], run_id="nightly-2026-11-25")
    build_report([wrap(ok), wrap(bad)], run_id="nightly-2026-11-25",
                 failed_groups=[{"group": "g2", "error": "1 table(s) failed"}])
    assert {"tables", "rows", "seconds", "results", "group"} <= top  # the recording works
    assert {"table", "seconds", "error"} <= rows
    assert top <= {f.name for f in ev.REPORT_FIELDS}, top - {f.name for f in ev.REPORT_FIELDS}
    declared_rows = {f.name for f in ev.REPORT_RESULT_FIELDS}
    assert rows <= declared_rows, rows - declared_rows


def test_a_real_report_file_and_its_lines_fit_the_declaration(cli, dbs, tmp_path):
    dbs.source.execute("CREATE TABLE public.a (id int PRIMARY KEY);"
                       "INSERT INTO public.a SELECT generate_series(1, 10);"
                       "CREATE TABLE public.b (id int PRIMARY KEY);")
    # A rule on the target's public.b makes its swap fail: one failed row too.
    dbs.target.execute("CREATE TABLE public.b (id int PRIMARY KEY);"
                       "CREATE RULE b_rule AS ON DELETE TO public.b DO INSTEAD NOTHING;")
    r = cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
             "public.a, public.b", "--group", "g1", "--run-id", "rep-1",
             "--report-uri", tmp_path.as_uri()])
    assert r.returncode == 1, r.stderr
    report = json.loads((tmp_path / "rep-1" / "g1.json").read_text())
    assert [x["status"] for x in report["results"]] == ["copied", "failed"]
    assert ev.report_problems(report) == []
    assert {e["event"] for e in r.events} >= {"run_started", "table_copied", "table_failed",
                                              "run_summary"}
    assert [ev.line_problems(e) for e in r.events] == [[] for _ in r.events]
