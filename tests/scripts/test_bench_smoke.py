"""Smoke test for scripts/bench (issue 6): keeps the benchmark script working in CI.

Tiny dataset, one round, the raw pipe and nightcopy only: checks the script runs end to end, the
results table has both rows (none failed), and the target equals the source (exact row counts per
table, compared by the benchmark itself after the copy). Not a timing test: no figure is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.md"
    js = tmp_path / "bench-results.json"
    work = tmp_path / "w"  # short: the servers' Unix sockets live under it (108-byte path limit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"),
         "--scale", "1", "--wide-rows", "2000", "--small-tables", "5", "--rounds", "1",
         "--cases", "full", "--methods", "raw,nightcopy", "--no-minimal-wal",
         "--shared-buffers", "128MB", "--maintenance-work-mem", "64MB", "--verify", "all",
         "--workdir", str(work), "--out", str(out), "--json", str(js)],
        capture_output=True, text=True, timeout=85, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    table = out.read_text()
    # the results table is the one whose header starts "| method | runs" (phase and target
    # tables follow it); collect its rows by method key
    rows: dict[str, str] = {}
    inside = False
    for line in table.splitlines():
        if line.startswith("| method | runs"):
            inside = True
        elif inside and line.startswith("| "):
            rows[line.split("|")[1].strip()] = line
        elif inside and not line.startswith("|"):
            break
    assert "raw" in rows and "nightcopy" in rows, table
    assert "failed" not in rows["raw"] and "failed" not in rows["nightcopy"], table
    assert rows["nightcopy"].rstrip(" |").endswith("yes"), table  # rows verified

    runs = json.loads(js.read_text())["runs"]
    assert {r["method"] for r in runs} == {"raw", "nightcopy"}
    for r in runs:
        assert r["ok"], r["error"]
        # 5 small tables + wide_events + 4 pgbench tables, every one with the source's row count
        assert r["verified"] is True, r["mismatches"]
