#!/usr/bin/env python3
"""Where does nightcopy's time go? One nightcopy run on the benchmark dataset, profiled three ways:

- py-spy (sampling, all threads, idle included) over the nightcopy process: the client side;
- pg_stat_activity sampled every 0.1 s on source and target: the server side, per kind of work;
- nightcopy's own per-table phase timings (copy/index/analyze/lock-wait seconds of its events).

    .venv/bin/python scripts/bench_profile.py --scale 20 --wide-rows 300000 [--jobs 2] [--tables LIST]

Needs py-spy in the venv (`pip install py-spy`); without it only the server side and the phases
are reported. Writes the raw py-spy stacks (flamegraph.pl / speedscope input) to --out-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from benchlib import dataset, servers  # noqa: E402
from benchlib.activity import ActivitySampler  # noqa: E402


def summarize_stacks(path: Path, top: int = 25) -> str:
    """Inclusive samples per nightcopy/psycopg2 frame and self samples per leaf, from py-spy raw."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0].split(": ", 1)[-1]] += count
        leaf[frames[-1]] += count
        for f in set(frames[1:]):
            if "nightcopy" in f or "copy_expert" in f or "execute" in f:
                inclusive[f] += count
    out = [f"py-spy: {total} samples (all threads, idle included)", "", "per thread:"]
    out += [f"  {n:7d}  {t}" for t, n in threads.most_common(10)]
    out += ["", "inclusive (nightcopy frames, DB calls):"]
    out += [f"  {n:7d} {100 * n / max(total, 1):5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "leaf (self) frames:"]
    out += [f"  {n:7d} {100 * n / max(total, 1):5.1f}%  {f}" for f, n in leaf.most_common(top)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=int, default=20)
    p.add_argument("--wide-rows", type=int, default=300_000)
    p.add_argument("--small-tables", type=int, default=200)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--tables", default="*.*")
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench-work")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench-work" / "profile")
    a = p.parse_args()

    servers.ensure_runtime_dir()
    a.workdir.mkdir(parents=True, exist_ok=True)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    base = a.workdir / f"prof-{os.getpid()}"
    base.mkdir()
    os.chmod(a.workdir, 0o755)
    os.chmod(base, 0o755)
    common = {"shared_buffers": "1GB", "maintenance_work_mem": "512MB"}
    started = []
    try:
        src = servers.start(base, "src", common)
        started.append(src)
        tgt = servers.start(base, "tgt", common)
        started.append(tgt)
        src.recreate_database("src")
        spec = dataset.DatasetSpec(a.scale, a.wide_rows, a.small_tables)
        dataset.build(src.dsn("src"), spec, src.server.bin_dir)
        tgt.recreate_database("tgt")
        src.execute("CHECKPOINT")
        tgt.execute("CHECKPOINT")
        args = [sys.executable, "-m", "nightcopy", "copy", "--source", src.dsn("src"),
                "--target", tgt.dsn("tgt"), "--tables", a.tables]
        if a.jobs:
            args += ["--jobs", str(a.jobs)]
        stacks = a.out_dir / "pyspy-raw.txt"
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(pyspy).exists():
            args = [pyspy, "record", "--idle", "--threads", "--subprocesses", "--format", "raw",
                    "-r", str(a.rate), "-o", str(stacks), "--", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
        sampler = ActivitySampler([("source", src.admin_dsn, "src"), ("target", tgt.admin_dsn, "tgt")])
        t0 = time.perf_counter()
        with sampler:
            proc = subprocess.run(args, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        (a.out_dir / "events.jsonl").write_text(proc.stdout)
        (a.out_dir / "stderr.txt").write_text(proc.stderr)
        print(f"{spec.label()}: nightcopy exit {proc.returncode}, {wall:.2f} s wall "
              f"(under py-spy: a few % slower)")
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        copied = [e for e in events if e.get("event") == "table_copied"]
        sums: Counter[str] = Counter()
        for e in copied:
            for k, v in e.items():
                if k.endswith("seconds") and isinstance(v, int | float):
                    sums[k] += v
        print(f"\n{len(copied)} tables; phase seconds summed over tables:")
        for k, v in sums.most_common():
            print(f"  {k:22} {v:8.2f}")
        small = [e for e in copied if e["table"].startswith("public.small_")]
        if small:
            n = len(small)
            print(f"\nsmall tables ({n}): mean per table " + ", ".join(
                f"{k} {1000 * sum(e.get(k, 0) for e in small) / n:.1f} ms"
                for k in ("seconds", "copy_seconds", "index_seconds", "analyze_seconds")))
        print("\nslowest tables:")
        for e in sorted(copied, key=lambda e: -e.get("seconds", 0))[:6]:
            print("  " + ", ".join(f"{k}={e[k]}" for k in e if k.endswith("seconds") or k in ("table", "rows", "bytes")))
        print("\nserver activity (backend-seconds):")
        for label, kinds in sampler.seconds.items():
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
                print(f"  {label:7} {k:22} {v:7.2f}")
        if stacks.exists():
            print("\n" + summarize_stacks(stacks))
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
