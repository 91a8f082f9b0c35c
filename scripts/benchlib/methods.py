"""The copy methods the benchmark compares, each run as a user would run it from a shell."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .measure import MethodFailed, Tracker


@dataclass
class RunContext:
    src_dsn: str
    tgt_dsn: str
    bin_dir: Path
    workdir: Path          # scratch for this run (dump dirs, pgcopydb --dir), emptied afterwards
    log: Path              # stderr of every client process of this run
    tables: list[str]      # format('%I.%I') names, largest first
    tracker: Tracker
    extra: dict[str, Any] = field(default_factory=dict)  # per-run facts a method reports


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    run: Callable[[RunContext], None]
    target: str = "replica"       # which target server: "replica" or "minimal" (wal_level)
    needs_empty_target: bool = True


def _psql(ctx: RunContext, dsn: str) -> list[str]:
    return [str(ctx.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn]


def raw_pipe(ctx: RunContext, *, parallel: int = 2) -> None:
    """The raw binary pipe (docs/benchmark.md, `raw`): pre-data, per-table psql \\copy binary pipes
    two at a time (largest first, as a careful user would order them), then post-data -j2."""
    schema = ctx.workdir / "schema.dump"
    ctx.tracker.run([str(ctx.bin_dir / "pg_dump"), "-Fc", "--schema-only", "-f", str(schema),
                     "-d", ctx.src_dsn], what="pg_dump --schema-only", log=ctx.log)
    ctx.tracker.run([str(ctx.bin_dir / "pg_restore"), "--section=pre-data", "-d", ctx.tgt_dsn,
                     str(schema)], what="pg_restore pre-data", log=ctx.log)

    def one(table: str) -> None:
        ctx.tracker.pipe(
            [*_psql(ctx, ctx.src_dsn), "-c", f"\\copy {table} to stdout with (format binary)"],
            [*_psql(ctx, ctx.tgt_dsn), "-c", f"\\copy {table} from stdin with (format binary)"],
            what=f"copy {table}", log=ctx.log)

    _parallel(one, ctx.tables, parallel)
    ctx.tracker.run([str(ctx.bin_dir / "pg_restore"), "-j2", "--section=post-data", "-d",
                     ctx.tgt_dsn, str(schema)], what="pg_restore post-data", log=ctx.log)


def psycopg2_reference(ctx: RunContext, *, parallel: int = 2) -> None:
    """anchors.md's minimal psycopg2 reference: like the raw pipe, but the per-table COPY pipes
    run in one Python process (scripts/bench_pyref.py) instead of psql pairs."""
    schema = ctx.workdir / "schema.dump"
    ctx.tracker.run([str(ctx.bin_dir / "pg_dump"), "-Fc", "--schema-only", "-f", str(schema),
                     "-d", ctx.src_dsn], what="pg_dump --schema-only", log=ctx.log)
    ctx.tracker.run([str(ctx.bin_dir / "pg_restore"), "--section=pre-data", "-d", ctx.tgt_dsn,
                     str(schema)], what="pg_restore pre-data", log=ctx.log)
    ctx.tracker.run([sys.executable, str(Path(__file__).resolve().parent.parent / "bench_pyref.py"),
                     ctx.src_dsn, ctx.tgt_dsn, str(parallel), *ctx.tables],
                    what="bench_pyref.py", log=ctx.log)
    ctx.tracker.run([str(ctx.bin_dir / "pg_restore"), "-j2", "--section=post-data", "-d",
                     ctx.tgt_dsn, str(schema)], what="pg_restore post-data", log=ctx.log)


def raw_truncate(ctx: RunContext, *, parallel: int = 2) -> None:
    """Replace case, hand-scripted: per table TRUNCATE + binary \\copy in ONE transaction (psql -1),
    two tables at a time, into the already-populated target whose indexes stay in place. Atomic
    for readers like nightcopy's strategies (they wait on the TRUNCATE lock instead of seeing an
    empty table); no ANALYZE, as in the raw pipe."""
    def one(table: str) -> None:
        ctx.tracker.pipe(
            [*_psql(ctx, ctx.src_dsn), "-c", f"\\copy {table} to stdout with (format binary)"],
            [*_psql(ctx, ctx.tgt_dsn), "-1", "-c", f"TRUNCATE {table}",
             "-c", f"\\copy {table} from stdin with (format binary)"],
            what=f"truncate+copy {table}", log=ctx.log)

    _parallel(one, ctx.tables, parallel)


def dump_restore(ctx: RunContext) -> None:
    """`pg_dump -Fd -j2` + `pg_restore -j2`, default settings (so pg_dump's default compression)."""
    out = ctx.workdir / "dump"
    ctx.tracker.run([str(ctx.bin_dir / "pg_dump"), "-Fd", "-j2", "-f", str(out), "-d",
                     ctx.src_dsn], what="pg_dump -Fd -j2", log=ctx.log)
    ctx.tracker.run([str(ctx.bin_dir / "pg_restore"), "-j2", "-d", ctx.tgt_dsn, str(out)],
                    what="pg_restore -j2", log=ctx.log)


def pgcopydb_clone(ctx: RunContext) -> None:
    """pgcopydb clone --table-jobs 2 --index-jobs 2 (its defaults otherwise, incl. VACUUM ANALYZE),
    with the embedded PostgreSQL 18 tools first on PATH (pgcopydb runs pg_dump/pg_restore) and a
    --dir of its own per run."""
    exe = shutil.which("pgcopydb")
    if exe is None:
        raise MethodFailed("pgcopydb not installed")
    env = dict(os.environ, PATH=f"{ctx.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    ctx.tracker.run([exe, "clone", "--source", ctx.src_dsn, "--target", ctx.tgt_dsn,
                     "--table-jobs", "2", "--index-jobs", "2", "--dir",
                     str(ctx.workdir / "pgcopydb")], what="pgcopydb clone", log=ctx.log, env=env)


def nightcopy(ctx: RunContext, *, jobs: int | None = None, strategy: str | None = None,
              adopt: bool = False) -> None:
    """`python -m nightcopy copy --tables '*.*'` as a user runs it; its JSON events are kept for
    the per-phase breakdown."""
    args = [sys.executable, "-m", "nightcopy", "copy", "--source", ctx.src_dsn, "--target",
            ctx.tgt_dsn, "--tables", "*.*"]
    if jobs is not None:
        args += ["--jobs", str(jobs)]
    if strategy is not None:
        args += ["--strategy", strategy]
    if adopt:
        # The replace case's target was filled by the raw pipe: nightcopy did not create those
        # tables, and a glob replaces only the ones it did, unless told to adopt them.
        args += ["--adopt"]
    # The worker reads NIGHTCOPY_* from the environment: none may leak in from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    events_path = ctx.workdir / "events.jsonl"
    with open(events_path, "wb") as out:
        try:
            ctx.tracker.run(args, what="nightcopy copy", stdout=out, log=ctx.log, env=env)
        finally:
            ctx.extra["events"] = _read_events(events_path)


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            # stdout must carry JSON lines only (the worker contract, README); a stray line is worth reporting
            events.append({"event": "non_json_stdout", "line": line[:200]})
    return events


def _parallel(fn: Callable[[str], None], items: list[str], workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        errors = [f.exception() for f in futures]
    for e in errors:
        if e is not None:
            raise e


def all_methods() -> dict[str, Method]:
    ms = [
        Method("raw", "raw binary pipe (psql \\copy x2, pre/post-data)", raw_pipe),
        Method("pyref", "minimal psycopg2 reference (binary COPY pipe x2 in Python, "
               "pre/post-data as raw)", psycopg2_reference),
        Method("dump", "pg_dump -Fd -j2 + pg_restore -j2", dump_restore),
        Method("pgcopydb", "pgcopydb clone --table-jobs 2 --index-jobs 2", pgcopydb_clone),
        Method("nightcopy", "nightcopy copy (defaults)", nightcopy),
        Method("nightcopy-j1", "nightcopy copy --jobs 1", lambda c: nightcopy(c, jobs=1)),
        Method("nightcopy-j2", "nightcopy copy --jobs 2", lambda c: nightcopy(c, jobs=2)),
        Method("nightcopy-j4", "nightcopy copy --jobs 4", lambda c: nightcopy(c, jobs=4)),
        Method("raw@minimal", "raw binary pipe, target wal_level=minimal", raw_pipe,
               target="minimal"),
        Method("nightcopy@minimal", "nightcopy copy (defaults), target wal_level=minimal",
               nightcopy, target="minimal"),
        # replace case (target already populated)
        Method("nightcopy-swap", "nightcopy copy (swap, the default) into populated target",
               lambda c: nightcopy(c, adopt=True), needs_empty_target=False),
        Method("nightcopy-truncate", "nightcopy copy --strategy truncate into populated target",
               lambda c: nightcopy(c, strategy="truncate", adopt=True), needs_empty_target=False),
        Method("raw-truncate", "TRUNCATE + psql \\copy binary in one transaction, x2",
               raw_truncate, needs_empty_target=False),
    ]
    return {m.key: m for m in ms}
