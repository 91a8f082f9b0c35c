"""Turning run records into the markdown results table (bench-results.md)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

MB = 1_000_000


@dataclass
class RunRecord:
    case: str
    method: str
    round: int
    ok: bool
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    max_rss_single: int = 0
    max_rss_sum: int = 0
    verified: bool | None = None      # None: not checked this run
    mismatches: list[str] = field(default_factory=list)
    error: str | None = None
    phases: dict[str, float] = field(default_factory=dict)   # nightcopy: summed per-table phases
    per_process_peak: dict[str, int] = field(default_factory=dict)
    activity: dict[str, dict[str, float]] = field(default_factory=dict)  # server -> kind -> s
    target_wal_bytes: int | None = None  # WAL the target server wrote during the run
    tables: list[dict[str, Any]] = field(default_factory=list)  # nightcopy: per-table timings

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CaseInfo:
    name: str
    title: str
    dataset: str
    dataset_bytes: int
    tables: int
    small_tables: int       # how many of them are small_* (for ms per small table)
    note: str = ""


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def summarize(records: list[RunRecord], case: CaseInfo) -> list[dict[str, Any]]:
    rows = []
    methods = list(dict.fromkeys(r.method for r in records if r.case == case.name))
    for m in methods:
        runs = [r for r in records if r.case == case.name and r.method == m]
        ok = [r for r in runs if r.ok]
        row: dict[str, Any] = {"method": m, "runs": len(runs), "ok": len(ok),
                               "errors": [r.error for r in runs if not r.ok]}
        if ok:
            secs = [r.seconds for r in ok]
            best = min(ok, key=lambda r: r.seconds)
            row.update(
                min=min(secs), median=statistics.median(secs),
                mbps=case.dataset_bytes / MB / min(secs),
                ms_per_table=1000 * min(secs) / case.tables,
                server_cpu=statistics.median(r.server_cpu for r in ok),
                client_cpu=statistics.median(r.client_cpu for r in ok),
                wal_mb=(statistics.median(r.target_wal_bytes for r in ok) / MB
                        if all(r.target_wal_bytes is not None for r in ok) else None),
                rss_single=max(r.max_rss_single for r in ok),
                rss_sum=max(r.max_rss_sum for r in ok),
                verified=all(r.verified is not False for r in ok)
                and any(r.verified for r in ok),
                phases=best.phases,
                activity=best.activity,
            )
        rows.append(row)
    return rows


def markdown(case: CaseInfo, rows: list[dict[str, Any]], reference: str) -> str:
    ref = next((r for r in rows if r["method"] == reference and "min" in r), None)
    lines = [f"### {case.title}", "",
             f"Dataset: {case.dataset}, {case.tables} tables, "
             f"{case.dataset_bytes / MB:.0f} MB (pg_total_relation_size).", ""]
    if case.note:
        lines += [case.note, ""]
    per_table_hdr = "ms/table" if case.small_tables == case.tables else None
    hdr = ["method", "runs", "min s", "median s", "MB/s"]
    if per_table_hdr:
        hdr.append(per_table_hdr)
    hdr += ["server CPU-s", "client CPU-s", "target WAL MB", "peak RSS (largest process)", "peak RSS (all clients)",
            f"x {reference}", "rows verified"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for r in rows:
        if "min" not in r:
            cells = [r["method"], f"{r['ok']}/{r['runs']}"] + ["failed"] + [""] * (len(hdr) - 3)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ratio = r["min"] / ref["min"] if ref else None
        cells = [r["method"], f"{r['ok']}/{r['runs']}", _fmt(r["min"]), _fmt(r["median"]),
                 _fmt(r["mbps"], 1)]
        if per_table_hdr:
            cells.append(_fmt(r["ms_per_table"], 1))
        cells += [_fmt(r["server_cpu"], 1), _fmt(r["client_cpu"], 1), _fmt(r["wal_mb"], 0),
                  f"{r['rss_single'] / 2**20:.0f} MB", f"{r['rss_sum'] / 2**20:.0f} MB",
                  _fmt(ratio) + "x" if ratio else "—", "yes" if r["verified"] else "NO"]
        lines.append("| " + " | ".join(cells) + " |")
    failures = [(r["method"], e) for r in rows for e in r["errors"] if e]
    for method, err in failures:
        first = err.strip().splitlines()[0] if err.strip() else err
        lines.append(f"\n- {method} failed: `{first[:300]}`")
    phase_rows = [r for r in rows if r.get("phases")]
    if phase_rows:
        keys = sorted({k for r in phase_rows for k in r["phases"]})
        lines += ["", "nightcopy per-phase seconds, summed over tables (fastest run; phases of "
                      "tables copied in parallel overlap, so they can exceed the wall time):", "",
                  "| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for r in phase_rows:
            lines.append(f"| {r['method']} | "
                         + " | ".join(_fmt(r["phases"].get(k)) for k in keys) + " |")
    act_rows = [r for r in rows if r.get("activity")]
    if act_rows:
        cols = sorted({(srv, k) for r in act_rows for srv, kinds in r["activity"].items()
                       for k in kinds}, key=lambda sk: (sk[0] != "source", sk[1]))
        lines += ["", "Server activity during the fastest run (backend-seconds from pg_stat_activity "
                      "sampled every 0.1 s; several backends work at once, so columns can sum past "
                      "the wall time):", "",
                  "| method | " + " | ".join(f"{srv}: {k}" for srv, k in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for r in act_rows:
            lines.append(f"| {r['method']} | " + " | ".join(
                _fmt(r["activity"].get(srv, {}).get(k), 1) for srv, k in cols) + " |")
    return "\n".join(lines) + "\n"
