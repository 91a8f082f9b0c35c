"""`nightcopy demo`: the whole night on this machine, with nothing to set up.

Starts two embedded PostgreSQL servers (source and target), fills the source with the sample
shop (nightcopy.sample.dataset), runs its three groups exactly like `nightcopy run` (same workers,
same ledger), prints the report, then the rebalancing suggestion of `nightcopy plan` from the
timings just measured, and stops the servers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

from nightcopy.errors import NightcopyError
from nightcopy.ops.config_file import RunConfig


def run_demo(con: Console, *, scale: float = 1.0, parallel: int = 3,
             workdir: Path | None = None) -> bool:
    """Returns True when every group succeeded."""
    import psycopg2

    from nightcopy.cli.progress import observer_for, render_outcome
    from nightcopy.cli.render import fmt_seconds, render_plan
    from nightcopy.engine.table_groups import parse_table_groups
    from nightcopy.ops.local_run import new_run_id, prepare_groups, run_groups
    from nightcopy.ops.plan import plan_from_config
    from nightcopy.sample.dataset import DEMO_GROUPS, create_dataset
    from nightcopy.sample.servers import EmbeddedPostgresMissing, start_server

    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="nightcopy-demo-", dir=workdir))
    # The embedded server drops root privileges when run as root: it must reach its directory.
    os.chmod(base, 0o755)
    servers = []
    try:
        _step(con, "1/4", "Starting two embedded PostgreSQL servers (source, target)...")
        try:
            source = start_server(base / "source", delete_on_stop=True, fast_unsafe=True)
            servers.append(source)
            target = start_server(base / "target", delete_on_stop=True, fast_unsafe=True)
            servers.append(target)
        except EmbeddedPostgresMissing as exc:
            raise NightcopyError(str(exc)) from None
        except Exception as exc:  # the wheel raises plain exceptions with pg_ctl's output
            detail = [line for line in str(exc).splitlines() if "could not" in line or "FATAL" in line]
            raise NightcopyError(
                f"could not start an embedded PostgreSQL server under {base}"
                + (f": {detail[0].strip()}" if detail else "")
                + " (with --workdir, every directory above it must be readable by other users)"
            ) from None
        source_dsn, target_dsn = _database(source, "shop"), _database(target, "reporting")

        _step(con, "2/4", f"Generating the sample shop on the source (scale {scale:g})...")
        t = time.monotonic()
        conn = psycopg2.connect(source_dsn)
        try:
            rows = create_dataset(conn, scale)
        finally:
            conn.close()
        con.print(f"      {rows:,} rows in 20 tables, {fmt_seconds(time.monotonic() - t)}")

        config = RunConfig(source_dsn=source_dsn, target_dsn=target_dsn,
                           groups=parse_table_groups(DEMO_GROUPS), origin="the demo's groups")
        for g in config.groups:
            con.print(Text.assemble("      group ", (g.name, "bold"), f": {', '.join(g.tables)}"))

        _step(con, "3/4", f"Copying the {len(config.groups)} groups in parallel, one "
              "`nightcopy copy` worker each (as CodeBuild runs them)...")
        groups = prepare_groups(config)
        outcome = run_groups(groups, source_dsn=source_dsn, target_dsn=target_dsn,
                             run_id=new_run_id("demo"), parallel=parallel, options={},
                             observer=observer_for(con))
        render_outcome(con, outcome)

        # --allow-split: the shop's foreign keys link all but three of its tables, and the
        # demo's groups already split them; kept together, there would be nothing to balance.
        _step(con, "4/4", "Rebalancing suggestion (`nightcopy plan --groups "
              f"{len(config.groups)} --allow-split`: the demo's groups already split tables "
              "its foreign keys link) from the timings just measured:")
        plan = plan_from_config(config, len(config.groups), nights=7, allow_split=True)
        render_plan(con, plan, origin=config.origin)
        con.print(f"Demo finished in {fmt_seconds(time.monotonic() - t0)}. With your own "
                  "databases: write a nightcopy.toml (docs/operating.md) and run "
                  "`nightcopy validate`, then `nightcopy run`.")
        return outcome.ok
    finally:
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _step(con: Console, step: str, text: str) -> None:
    con.print(Text.assemble((step, "bold"), " ", text))


def _database(server, name: str) -> str:
    """A fresh database of its own on the server (not `postgres`), as in real life."""
    import psycopg2

    conn = psycopg2.connect(server.dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return server.dsn_for(name)
