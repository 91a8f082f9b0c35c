"""A COPY that a hot standby cancels mid-stream (a recovery conflict: the primary vacuumed away
rows the snapshot still needed) is retried within the invocation, from a new snapshot, and the
night succeeds (issue 15). The standby's reads go through a slowed proxy so that the conflict
lands while the COPY runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from rel_tools import TcpProxy, unix_socket_of

from tests.engine.test_read_replica import _replayed, _sql, replica  # noqa: F401 (fixture)


def test_a_copy_cancelled_by_a_recovery_conflict_is_retried(replica, dbs):  # noqa: F811
    primary, standby = replica
    _sql(primary, "DROP TABLE IF EXISTS public.big; "
                  "CREATE TABLE public.big (id int PRIMARY KEY, pad text); "
                  "INSERT INTO public.big SELECT g, repeat('x', 100) "
                  "FROM generate_series(1, 150000) g")
    _replayed(primary, standby)
    proxy = TcpProxy(unix_socket_of(standby), delay=0.003, chunk=16384)
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")},
               "NIGHTCOPY_SOURCE_DSN": proxy.dsn(standby),
               "NIGHTCOPY_TARGET_DSN": dbs.target.dsn}
        proc = subprocess.Popen([sys.executable, "-m", "nightcopy", "copy", "-t", "public.big"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 60
        while not _sql(standby, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                "AND query ILIKE 'COPY%big%'")[0][0]:
            assert time.monotonic() < deadline and proc.poll() is None, "no COPY seen"
            time.sleep(0.02)
        _sql(primary, "DELETE FROM public.big WHERE id > 100000")
        _sql(primary, "VACUUM public.big")
        out, err = proc.communicate(timeout=120)
    finally:
        proxy.close()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    warnings = " ".join(e["message"] for e in events if e["event"] == "warning")
    assert "the hot standby source cancelled the read (a recovery conflict" in warnings, warnings
    assert "retrying (1/1)" in warnings
    [copied] = [e for e in events if e["event"] == "table_copied"]
    assert copied["attempts"] == 2
    assert dbs.target.scalar("SELECT count(*) FROM public.big") == 100000
