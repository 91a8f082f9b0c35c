"""The data path: COPY streamed through a pipe, memory bounded."""

from __future__ import annotations

import json
import time


def test_memory_stays_bounded_whatever_the_table_size(dbs):
    """The worker streams: ~250 MB of COPY data must not grow its memory past 100 MB."""
    import subprocess
    import sys

    dbs.source.execute("CREATE TABLE public.big (id bigint PRIMARY KEY, pad text);"
                       "INSERT INTO public.big SELECT g, repeat(md5(g::text), 7) FROM "
                       "generate_series(1, 1000000) g")
    proc = subprocess.Popen([sys.executable, "-m", "nightcopy", "copy", "--source",
                             dbs.source.dsn, "--target", dbs.target.dsn, "--tables", "public.big"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # VmHWM is the process's own peak RSS since exec. (getrusage/wait4 would also count the
    # pages of this big pytest process it was forked from.) It only grows, so the last reading
    # before the process exits is its peak, give or take the final few milliseconds.
    peak_kib = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert peak_kib > 0
    copied = [json.loads(line) for line in stdout.splitlines() if '"table_copied"' in line][0]
    assert copied["bytes"] > 240_000_000
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
