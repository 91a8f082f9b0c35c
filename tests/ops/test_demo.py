"""`nightcopy demo` end to end (scaled down), as a newcomer runs it: a real process."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path


def test_demo_copies_the_sample_shop_and_suggests_groups(cli):
    # not pytest's tmp_path: the server drops root privileges and must reach its directory
    workdir = Path(tempfile.mkdtemp(prefix="nightcopy-demo-test-"))
    workdir.chmod(0o755)
    r = cli(["demo", "--scale", "0.05", "--workdir", str(workdir)], timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for step in ("1/4", "2/4", "3/4", "4/4"):
        assert step in out
    # all 20 tables, three groups, each group succeeded
    total = next(line for line in out.splitlines() if line.startswith("│ total"))
    assert re.search(r"│ total\s+│ succeeded │\s+20 │", total), total
    assert out.count("succeeded in") == 3
    assert "public.\"Order Items\"" in out and "public.events" in out
    assert "Rebalancing suggestion" in out
    m = re.search(r"Estimated makespan: today (\S+), proposed (\S+)", out)
    assert m, out
    # the servers were stopped and their directories removed
    assert list(workdir.iterdir()) == []
    workdir.rmdir()


def test_demo_dataset_is_deterministic(dbs):
    from nightcopy.sample.dataset import create_dataset, tables

    checks = []
    for db in (dbs.source, dbs.target):  # two different servers, same data
        conn = db.connect()
        conn.autocommit = False
        create_dataset(conn, scale=0.02)
        conn.close()
        parts = [f"(SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {name} t)"
                 for name in tables()]
        checks.append(db.query("SELECT " + ", ".join(parts))[0])
    assert checks[0] == checks[1]
    assert all(checks[0])  # every table has rows
