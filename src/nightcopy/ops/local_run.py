"""`nightcopy run`: every group on this machine, by the same worker CodeBuild runs.

Each group is one `python -m nightcopy copy --group G --tables JSON --run-id R` process, exactly
the worker contract (README, "The worker"), with every worker option resolved once by `run` and
passed as a flag: nothing here copies a table, so a local night and an AWS night
behave the same (same ledger, same resume, same report files). DSNs reach the workers through
NIGHTCOPY_SOURCE_DSN / NIGHTCOPY_TARGET_DSN in their environment, never on a command line that
`ps` would show. Progress comes from the workers' stdout JSON lines; their stderr (human
messages) is kept per group and shown for groups that fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from nightcopy import options as options_registry
from nightcopy.engine import event_schema as ev
from nightcopy.engine import run_id as engine_run_id
from nightcopy.errors import ConfigError, NightcopyError

WORKER_OPTIONS = tuple(o.name for o in options_registry.WORKER_OPTIONS)
# The operator's variables that configure a worker: `run` has read them already (its flags'
# NIGHTCOPY_<NAME>) and must not let them reach the workers behind its back.
_OPTION_VARIABLES = frozenset(o.envvar for o in options_registry.REGISTRY)
STDERR_TAIL = 20


def new_run_id(prefix: str = "local") -> str:
    """A new run id for a night started on this machine (`local-...`; the demo passes `demo`):
    the worker's own format (nightcopy.engine.run_id), so ids look alike wherever they start."""
    return engine_run_id.new_run_id(prefix)


@dataclass
class GroupState:
    name: str
    tables: list[str]  # as configured (names and globs): passed to the worker as JSON
    total: int | None = None  # tables after glob expansion, when known
    status: str = "pending"  # pending | running | succeeded | failed
    done: int = 0  # copied or skipped (already done by this run)
    skipped: int = 0
    failed: int = 0
    rows: int = 0
    bytes: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)  # table -> bytes so far
    expected: list[str] = field(default_factory=list)  # expanded table names, when known
    finished_tables: set[str] = field(default_factory=set)
    jobs: int | None = None  # the worker's --jobs (from its run_started line)
    started: float | None = None  # time.monotonic()
    finished: float | None = None
    returncode: int | None = None
    summary: dict | None = None  # the worker's run_summary event
    report: dict | None = None  # the worker's report file (summary + per-table results)
    results: list[dict] = field(default_factory=list)  # table_copied / table_failed events
    warnings: list[str] = field(default_factory=list)
    # schema_changed events: {"table", "changes", "views"} (engine/schema_drift.py)
    schema_changes: list[dict] = field(default_factory=list)
    stderr_tail: deque = field(default_factory=lambda: deque(maxlen=STDERR_TAIL))
    planned: list[dict] = field(default_factory=list)  # table_planned events (--dry-run)

    @property
    def current(self) -> str | None:
        """The table(s) being copied right now (several with --jobs > 1)."""
        in_flight = list(self.in_flight)
        if not in_flight and self.expected and self.jobs:
            # Without start events, the tables still to do are all in flight once there are no
            # more of them than the worker runs at once.
            left = [t for t in self.expected if t not in self.finished_tables]
            if len(left) <= self.jobs:
                in_flight = left
        if not in_flight:
            return None
        first = in_flight[0]
        return first + (f" (+{len(in_flight) - 1})" if len(in_flight) > 1 else "")

    @property
    def live_bytes(self) -> int:
        """Bytes of finished tables plus what is streaming now: the live MB/s."""
        return self.bytes + sum(self.in_flight.values())

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    @property
    def error(self) -> str | None:
        """Why the group failed, in one line (for the summary and Slack)."""
        if self.status != "failed":
            return None
        if self.failed:
            return f"{self.failed} table(s) failed"
        lines = [line for line in self.stderr_tail if line.strip()]
        last = lines[-1].strip() if lines else ""
        last = last.removeprefix("nightcopy: error: ")  # the worker's own one-line error
        return last or f"the worker exited with status {self.returncode}"


class Observer(Protocol):
    def started(self, run_id: str, groups: list[GroupState]) -> None: ...
    def group_started(self, group: GroupState) -> None: ...
    def event(self, group: GroupState, event: dict) -> None: ...
    def group_finished(self, group: GroupState) -> None: ...
    def finished(self) -> None: ...


@dataclass
class RunOutcome:
    run_id: str
    groups: list[GroupState]
    seconds: float
    report_dir: Path

    @property
    def ok(self) -> bool:
        return all(g.status == "succeeded" for g in self.groups)

    @property
    def critical_group(self) -> GroupState | None:
        done = [g for g in self.groups if g.finished is not None]
        return max(done, key=lambda g: g.finished or 0.0) if done else None

    def summaries(self) -> list[dict]:
        """Per-group report objects as the notifier reads them from S3."""
        out = []
        for g in self.groups:
            if g.report:
                out.append(g.report)
            elif g.summary:
                out.append({**g.summary, "results": g.results})
        return out

    def failed_groups(self) -> list[dict]:
        return [{"group": g.name, "error": g.error} for g in self.groups if g.status == "failed"]


def resolve_worker_options(given: dict, config_options: dict) -> dict:
    """Every worker option, resolved once for the whole run: `run`'s flags (or their NIGHTCOPY_*
    variables) > the configuration's options > the default. Each worker gets all of them as
    flags, so every group runs with exactly the same settings."""
    return options_registry.resolve([given, config_options], options_registry.WORKER_OPTIONS)


def worker_command(group: GroupState, run_id: str, report_dir: Path,
                   options: dict, *, dry_run: bool = False) -> list[str]:
    """The worker's argv. `options` as resolve_worker_options returns them; other keys (such as
    `parallel`, which is `run`'s own) are not the worker's and are left out."""
    cmd = [sys.executable, "-m", "nightcopy", "copy", "--group", group.name,
           "--tables", json.dumps(group.tables, ensure_ascii=False), "--run-id", run_id,
           "--report-uri", report_dir.resolve().as_uri(), *(["--dry-run"] if dry_run else [])]
    for option in options_registry.WORKER_OPTIONS:
        if options.get(option.name) is not None:
            cmd += option.to_argv(options[option.name])
    return cmd


def worker_env(source_dsn: str, target_dsn: str, mask_key: str | None = None
               ) -> dict[str, str]:
    # Drop the operator's own NIGHTCOPY_<OPTION> settings: the worker's input is exactly what
    # this run decided (flags), plus the DSNs, which must not appear in argv. Other variables
    # (NIGHTCOPY_DEBUG for a worker's traceback) pass through.
    env = {k: v for k, v in os.environ.items() if k not in _OPTION_VARIABLES}
    env["NIGHTCOPY_SOURCE_DSN"] = source_dsn
    env["NIGHTCOPY_TARGET_DSN"] = target_dsn
    # A secret too: the environment, never argv; like the DSNs, from the config (env:VAR there).
    if mask_key:
        env["NIGHTCOPY_MASK_KEY"] = mask_key
    env["PYTHONUNBUFFERED"] = "1"  # JSON lines arrive as they happen, for live progress
    return env


def apply_event(group: GroupState, event: dict) -> None:
    """Fold one worker JSON line into the group's state (names: nightcopy.engine.event_schema;
    an event this release does not know, from a newer worker, is ignored)."""
    kind = event.get("event")
    table = event.get("table")
    if kind in (ev.TABLE_COPIED, ev.TABLE_FAILED, ev.TABLE_SKIPPED) and isinstance(table, str):
        group.in_flight.pop(table, None)
        group.finished_tables.add(table)
    if kind == ev.TABLE_COPIED:
        group.done += 1
        group.rows += int(event.get("rows") or 0)
        group.bytes += int(event.get("bytes") or 0)
        group.results.append({**event, "status": "copied"})
    elif kind == ev.TABLE_SKIPPED:
        group.done += 1
        group.skipped += 1
    elif kind == ev.TABLE_FAILED:
        group.failed += 1
        group.results.append({**event, "status": "failed"})
    elif kind in (ev.TABLE_STARTED, ev.TABLE_PROGRESS) and table:
        # table_started has no bytes yet (0); table_progress carries the bytes streamed so far
        group.in_flight[table] = int(event.get("bytes") or 0)
    elif kind == ev.WARNING:
        group.warnings.append(str(event.get("message") or event))
    elif kind == ev.SCHEMA_CHANGED:
        group.schema_changes.append({"table": table, "changes": event.get("changes") or [],
                                     "views": event.get("views") or []})
    elif kind == ev.RUN_STARTED:
        if event.get("jobs") is not None:
            group.jobs = int(event["jobs"])
        if event.get("tables") is not None:
            group.total = int(event["tables"])  # the worker's own count after glob expansion
    elif kind == ev.TABLE_PLANNED:
        group.planned.append(event)
    elif kind in (ev.RUN_SUMMARY, ev.DRY_RUN_SUMMARY):
        group.summary = event
        group.in_flight.clear()
        if group.total is None and event.get("tables") is not None:
            group.total = int(event["tables"])


def _reader(stream, group: GroupState, q: queue.Queue, kind: str) -> None:
    for line in iter(stream.readline, ""):
        q.put((kind, group, line.rstrip("\n")))
    stream.close()
    q.put((kind + "_eof", group, None))


def _read_report(report_dir: Path, run_id: str, group: str) -> dict | None:
    path = report_dir / run_id / f"{group}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_groups(groups: list[GroupState], *, source_dsn: str, target_dsn: str, run_id: str,
               parallel: int, options: dict, observer: Observer,
               report_dir: Path | None = None, mask_key: str | None = None,
               dry_run: bool = False) -> RunOutcome:
    """Run the workers, at most `parallel` at once; returns when all have exited. With
    dry_run they only say what they would copy (`copy --dry-run`): nothing is written."""
    if parallel < 1:
        raise ConfigError("--parallel must be at least 1")
    own_dir = report_dir is None
    if report_dir is None:
        report_dir = Path(tempfile.mkdtemp(prefix="nightcopy-run-"))
    report_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(source_dsn, target_dsn, mask_key)
    q: queue.Queue = queue.Queue()
    pending = list(groups)
    running: dict[str, tuple[subprocess.Popen, int]] = {}  # group -> (process, open streams)
    # Every worker started, also one whose streams closed but that was not yet waited for when
    # a signal came: none may outlive the run.
    started: list[subprocess.Popen] = []
    logs: dict[str, TextIO] = {}  # group -> its worker's stderr, kept with --report-dir
    t0 = time.monotonic()
    previous_sigterm = _sigterm_as_interrupt()
    observer.started(run_id, groups)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                group = pending.pop(0)
                proc = subprocess.Popen(
                    worker_command(group, run_id, report_dir, options, dry_run=dry_run), env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, encoding="utf-8", errors="replace", bufsize=1,
                )
                started.append(proc)
                group.status, group.started = "running", time.monotonic()
                running[group.name] = (proc, 2)
                if not own_dir:
                    log_path = report_dir / run_id / f"{group.name}.log"
                    log_path.parent.mkdir(parents=True, exist_ok=True)
                    logs[group.name] = log_path.open("a", encoding="utf-8")
                for stream, kind in ((proc.stdout, "out"), (proc.stderr, "err")):
                    threading.Thread(target=_reader, args=(stream, group, q, kind),
                                     daemon=True).start()
                observer.group_started(group)
            kind, group, line = q.get()
            if kind == "out":
                try:
                    event = json.loads(line)
                except ValueError:
                    group.stderr_tail.append(line)  # not JSON: keep it as a message
                    continue
                if isinstance(event, dict):
                    apply_event(group, event)
                    observer.event(group, event)
            elif kind == "err":
                group.stderr_tail.append(line)
                if group.name in logs:
                    logs[group.name].write(line + "\n")
            else:  # one stream closed; the worker is done when both are
                proc, open_streams = running[group.name]
                if open_streams > 1:
                    running[group.name] = (proc, open_streams - 1)
                    continue
                del running[group.name]
                group.returncode = proc.wait()
                group.finished = time.monotonic()
                group.report = _read_report(report_dir, run_id, group.name)
                ok = (group.returncode == 0 and group.failed == 0
                      and (group.summary or {}).get("status", "succeeded") == "succeeded")
                group.status = "succeeded" if ok else "failed"
                observer.group_finished(group)
    except BaseException as exc:
        # Ctrl-C or a bug here: stop the workers we started; each leaves its failed table as
        # it was (the worker contract), and a rerun with the same --run-id resumes.
        _stop_workers(started)
        if isinstance(exc, KeyboardInterrupt):
            stopped = sorted(running)
            if not dry_run:
                _record_interrupted(target_dsn, run_id, {g.name: g.elapsed for g in groups
                                                         if g.name in running})
            raise RunInterrupted(run_id, stopped, [g.name for g in pending]) from None
        raise
    finally:
        for log in logs.values():
            log.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        observer.finished()
        if own_dir:
            shutil.rmtree(report_dir, ignore_errors=True)  # reports were read into the states
    return RunOutcome(run_id, groups, time.monotonic() - t0, report_dir)


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    """Terminate the workers still alive and wait until each has exited (SIGKILL after 30 s)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RunInterrupted(NightcopyError):
    """`nightcopy run` stopped by Ctrl-C or SIGTERM: its workers are stopped, their ledger rows
    say interrupted; the same run id resumes (the caller names the command)."""

    def __init__(self, run_id: str, stopped: list[str], not_started: list[str]) -> None:
        self.run_id, self.stopped, self.not_started = run_id, stopped, not_started
        parts = [f"run {run_id} interrupted"]
        if stopped:
            parts.append(f"stopped group(s) {', '.join(stopped)}")
        if not_started:
            parts.append(f"not started: {', '.join(not_started)}")
        super().__init__("; ".join(parts))


def _record_interrupted(target_dsn: str, run_id: str, groups: dict[str, float]) -> None:
    """The stopped workers' ledger rows (group -> seconds it ran): interrupted, not running
    forever. Best effort: the target may be what was lost (then `history` shows them
    interrupted once none of their sessions is left)."""
    if not groups:
        return
    from nightcopy.engine.connection import connect
    from nightcopy.engine.ledger import mark_interrupted

    with contextlib.suppress(Exception):
        conn = connect(target_dsn, "target", "nightcopy run")
        try:
            mark_interrupted(conn, run_id, groups)
        finally:
            conn.close()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt():
    """A `kill` (cron timeout, systemd stop) stops the workers too instead of orphaning them."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def prepare_groups(config, only: tuple[str, ...] = (), *, exclude: str | None = None
                   ) -> list[GroupState]:
    """Check the config against the source (tables exist, no table in two groups) before any
    worker starts, and learn how many tables each group copies, for the progress bars."""
    from nightcopy.engine.connection import connect
    from nightcopy.ops.group_expansion import check_disjoint, expand_groups

    groups = list(config.groups)
    if only:
        known = {g.name for g in groups}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ConfigError(f"no group named {unknown[0]!r} in {config.origin} "
                              f"(groups: {', '.join(sorted(known))})")
        groups = [g for g in groups if g.name in only]
    conn = connect(config.source_dsn, "source", "nightcopy run")
    try:
        # Only the groups that run: `--group` still works while another group is broken.
        expanded = expand_groups(conn, groups, exclude)
    finally:
        conn.close()
    # An unreachable target is one clear line now rather than the same error from every worker.
    connect(config.target_dsn, "target", "nightcopy run").close()
    check_disjoint(expanded)
    tables = {e.name: e.tables for e in expanded}
    return [GroupState(g.name, list(g.tables), total=len(tables[g.name]),
                       expected=list(tables[g.name])) for g in groups]


def post_to_slack(config, outcome: RunOutcome) -> None:
    """The same message the notifier Lambda posts after a night on AWS."""
    from nightcopy_notifier.slack_message import build_report
    from nightcopy_notifier.slack_post import post_report

    message = build_report(outcome.summaries(), run_id=outcome.run_id,
                           failed_groups=outcome.failed_groups() or None)
    try:
        post_report(message, webhook_url=config.slack_webhook_url,
                    bot_token=config.slack_bot_token, channel=config.slack_channel)
    except Exception as exc:  # SlackPostError and friends: their text never holds the secret
        raise NightcopyError(f"the run finished but the Slack report failed: {exc}") from None
