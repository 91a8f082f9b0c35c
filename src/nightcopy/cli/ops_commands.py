"""Operator commands: run, demo, history, timings, plan, validate (thin: options and output).

The work happens in nightcopy.ops.local_run, .demo, .history, .plan and .validate; these functions only
turn options into calls and results into terminal output.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click

from nightcopy.cli.dsn_warnings import warn_about_passwords_in_argv
from nightcopy.cli.option_flags import check_name_flag, flags, run_flag
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.options import GROUP, JOBS, PARALLEL, RUN_ID, Place, settable_in

_config_options = [
    click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                 metavar="FILE", envvar="NIGHTCOPY_CONFIG", show_envvar=True,
                 help="The config file to read (default: ./nightcopy.toml)."),
    click.option("--ssm-prefix", default=None, metavar="PREFIX",
                 help="Read the configuration from SSM parameters under PREFIX instead."),
]


def config_options(func):
    for option in reversed(_config_options):
        func = option(func)
    return func


def _load(config_path: str | None, ssm_prefix: str | None):
    from nightcopy.cli.db_auth import install
    from nightcopy.ops import config_file

    config = config_file.load(config_path, ssm_prefix)
    install(config.options)  # source_auth / target_auth (run: its flags, in run_command)
    return config


@contextlib.contextmanager
def _hints_from(config) -> Iterator[None]:
    """Connection errors inside name the config's own DSN key (where the value came from)."""
    from nightcopy.ops.dsn_origin import restated

    try:
        yield
    except NightcopyError as exc:
        raise restated(exc, config) from None


def _target_dsn(target: str | None, config_path: str | None, ssm_prefix: str | None) -> str:
    """history/timings/plan only need the target: --target, else the config's."""
    if target:
        warn_about_passwords_in_argv(click.get_current_context(), {"target": (
            "--target", "NIGHTCOPY_TARGET_DSN", "PREFIX/target_dsn")})
        return target
    if not config_path and not ssm_prefix and not Path("nightcopy.toml").exists():
        raise ConfigError("no target database: pass --target (or set NIGHTCOPY_TARGET_DSN), "
                          "--config FILE or --ssm-prefix PREFIX")
    return _load(config_path, ssm_prefix).target_dsn


# ----------------------------------------------------------------------------------- run

# `run` takes every option a night is tuned with (the worker's, passed on as flags, and its own
# `parallel`); a bad value is a usage error here, before any worker starts.
RUN_OPTIONS = settable_in(Place.RUN)


def _run_flag(option):
    return run_flag(option, default_text="options.parallel, else all groups"
                    if option is PARALLEL else None)


def run_settings(config, given: dict) -> tuple[dict, int | None]:
    """The worker options every group gets (as flags) and the groups at once (None: all), from
    run's flags (or their NIGHTCOPY_* variables) over the configuration's options."""
    from nightcopy.ops.local_run import resolve_worker_options

    options = resolve_worker_options(given, config.options)
    return options, given.get("parallel") or config.options.get("parallel")


@click.command("run", short_help="Run every group on this machine and report.")
@config_options
@flags(_run_flag, RUN_OPTIONS)
@click.option("--run-id", default=None, metavar="ID",
              help="Reuse a run id to resume it: tables it already copied are skipped.")
@click.option("--group", "only", multiple=True, metavar="NAME",
              help="Run only this group (repeatable).")
@click.option("--slack/--no-slack", default=False,
              help="Post the report to Slack, as the notifier does after an AWS night "
                   "(default: no).")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Keep the workers' reports and messages here (RUN_ID/GROUP.json, .log).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON on stdout ({run_id, ok, seconds, groups: the "
                   "workers' reports}); progress goes to stderr.")
@click.option("--dry-run", is_flag=True,
              help="Say what each group would copy (tables after globs and exclusions, sizes, "
                   "row estimates, what would fail and why) and write nothing anywhere.")
def run_command(config_path, ssm_prefix, run_id, only, slack, report_dir, as_json, dry_run,
                **given):
    """Run every group on this machine, with the same worker as CodeBuild, and report."""
    from nightcopy.cli.progress import SILENT, observer_for, render_outcome
    from nightcopy.cli.render import console
    from nightcopy.ops.local_run import (
        RunInterrupted,
        new_run_id,
        post_to_slack,
        prepare_groups,
        run_groups,
    )

    for name in only:
        check_name_flag(GROUP, name, envvar=False)
    if run_id is not None:
        check_name_flag(RUN_ID, run_id, envvar=False)
    if dry_run and (slack or report_dir):
        raise click.UsageError("--dry-run writes and posts nothing: leave out "
                               f"{'--slack' if slack else '--report-dir'}")
    config = _load(config_path, ssm_prefix)
    if slack and not config.slack_configured:
        raise ConfigError(f"--slack: {config.origin} has no Slack settings (webhook_url, or "
                          "bot_token and channel)")
    options, parallel = run_settings(config, given)
    from nightcopy.cli.db_auth import install

    install(options)
    with _hints_from(config):
        groups = prepare_groups(config, only, exclude=options.get("exclude_table"))
    # With --json, stdout holds only the JSON document: progress and notes go to stderr.
    con = console(stderr=as_json)
    run_id = run_id or new_run_id()
    try:
        outcome = run_groups(
            groups, source_dsn=config.source_dsn, target_dsn=config.target_dsn,
            run_id=run_id, parallel=parallel or len(groups),
            options=options, observer=SILENT if dry_run else observer_for(con),
            report_dir=Path(report_dir) if report_dir else None, mask_key=config.mask_key,
            dry_run=dry_run,
        )
    except RunInterrupted as exc:
        raise NightcopyError(f"{exc}; resume with: "
                             f"{_resume_command(config_path, ssm_prefix, only, run_id)}") from None
    if dry_run:
        _show_dry_run(outcome, as_json, con)
        return
    if as_json:
        _echo_json_dict({"run_id": outcome.run_id, "ok": outcome.ok,
                         "seconds": round(outcome.seconds, 3),
                         "groups": [{"group": g.name, "status": g.status, "tables": g.total,
                                     "copied": g.done, "skipped": g.skipped, "failed": g.failed,
                                     "rows": g.rows, "bytes": g.bytes,
                                     "seconds": round(g.elapsed, 3)} for g in outcome.groups],
                         "reports": outcome.summaries()})
    else:
        render_outcome(con, outcome)
    if slack:
        post_to_slack(config, outcome)
        con.print("Slack report posted.")
    if not outcome.ok:
        failed = [g["group"] for g in outcome.failed_groups()]
        raise NightcopyError(f"run {outcome.run_id} failed: {len(failed)} of "
                             f"{len(outcome.groups)} groups ({', '.join(failed)}); the summary "
                             "above says why")


def _show_dry_run(outcome, as_json: bool, con) -> None:
    from nightcopy.cli.dry_run_render import render_dry_run

    if as_json:
        _echo_json_dict({"run_id": outcome.run_id, "ok": outcome.ok, "dry_run": True,
                         "groups": [{"group": g.name, "status": g.status, "error": g.error,
                                     "summary": g.summary, "tables": g.planned}
                                    for g in outcome.groups]})
    else:
        render_dry_run(con, outcome)
    if not outcome.ok:
        failed = [g["group"] for g in outcome.failed_groups()]
        raise NightcopyError(f"dry run: {len(failed)} of {len(outcome.groups)} groups would fail "
                             f"({', '.join(failed)}); the list above says why")


def _resume_command(config_path: str | None, ssm_prefix: str | None, only: tuple[str, ...],
                    run_id: str) -> str:
    """The `nightcopy run` that resumes this run: same configuration and groups, same id (the
    tuning flags are left to the user: they may be what they want to change)."""
    import shlex

    words = ["nightcopy", "run"]
    if config_path:
        words += ["--config", config_path]
    if ssm_prefix:
        words += ["--ssm-prefix", ssm_prefix]
    for name in only:
        words += ["--group", name]
    return shlex.join([*words, "--run-id", run_id])


# ---------------------------------------------------------------------------------- demo

@click.command("demo", short_help="Copy a generated dataset between two embedded servers.")
@click.option("--scale", type=click.FloatRange(min=0.001, max=20), default=1.0,
              envvar="NIGHTCOPY_DEMO_SCALE", show_envvar=True, show_default=True,
              metavar="FACTOR",
              help="Dataset size factor, 0.001 to 20 (1.0: about 575,000 rows over 20 tables).")
@click.option("--parallel", type=click.IntRange(min=1), default=3, show_default=True,
              metavar="N", help="Groups copied at once (the demo has 3 groups).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where the two servers live (default: a temporary directory, removed).")
def demo_command(scale, parallel, workdir):
    """Copy a generated dataset between two embedded PostgreSQL servers, then suggest groups."""
    from nightcopy.cli.demo import run_demo
    from nightcopy.cli.render import console

    ok = run_demo(console(), scale=scale, parallel=parallel,
                  workdir=Path(workdir) if workdir else None)
    if not ok:
        raise NightcopyError("the demo run failed (see above)")


# ------------------------------------------------------------------------ history/timings

_target_option = click.option(
    "--target", envvar="NIGHTCOPY_TARGET_DSN", show_envvar=True, default=None, metavar="DSN",
    help="Target database holding the ledger (default: the config's target_dsn).")
_logs_options = [
    click.option("--from-logs", is_flag=True,
                 help="Read the workers' lines in CloudWatch Logs instead of the ledger."),
    click.option("--log-group", envvar="NIGHTCOPY_LOG_GROUP", show_envvar=True, default=None,
                 metavar="NAME", help="The CodeBuild log group (with --from-logs)."),
]


def logs_options(days_default: str):
    """--from-logs, --log-group and --days, whose default each command states for itself."""
    days = click.option("--days", type=click.FloatRange(min=0.01), default=None, metavar="DAYS",
                        help=f"How far back to search the logs (default: {days_default}).")

    def apply(func):
        for option in reversed([*_logs_options, days]):
            func = option(func)
        return func
    return apply


def _need_log_group(from_logs: bool, log_group: str | None) -> None:
    if from_logs and not log_group:
        raise click.UsageError("--from-logs needs --log-group NAME (or NIGHTCOPY_LOG_GROUP)")


@click.command("history", short_help="Recent runs and per-table timings, slowest first.")
@config_options
@_target_option
@logs_options("RUNS + 1 days")
# A night may hold more than one run (a rerun, an ad-hoc run): the count is of runs, and
# --nights stays as the old name of the same option.
@click.option("--runs", "--nights", "nights", type=click.IntRange(min=1), default=7,
              show_default=True, metavar="RUNS", help="How many recent runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def history_command(config_path, ssm_prefix, target, from_logs, log_group, days, nights,
                    as_json):
    """Recent runs (with each night's critical path) and per-table timings, slowest first."""
    from nightcopy.cli.render import console, render_history
    from nightcopy.ops import history as hist
    from nightcopy.ops import history_from_logs as logs_history

    _need_log_group(from_logs, log_group)
    if from_logs:
        result = logs_history.history_from_logs(log_group, nights, days=days)
    else:
        result = hist.history(_target_dsn(target, config_path, ssm_prefix), nights)
    if as_json:
        _echo_json(result)
    else:
        render_history(console(), result)


@click.command("timings", short_help="Per-table timings of one run and its critical path.")
@config_options
@_target_option
@logs_options("2 days")
@click.option("--run-id", default=None, metavar="ID",
              help="The run to show (default: the latest).")
@click.option("--limit", type=click.IntRange(min=0), default=30, show_default=True, metavar="N",
              help="Tables to list (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (all tables).")
def timings_command(config_path, ssm_prefix, target, from_logs, log_group, days, run_id, limit,
                    as_json):
    """Per-table timings of one run, slowest first, and its critical path."""
    from nightcopy.cli.render import console, render_timings
    from nightcopy.ops import history as hist
    from nightcopy.ops import history_from_logs as logs_history

    _need_log_group(from_logs, log_group)
    if from_logs:
        result = logs_history.timings_from_logs(log_group, run_id, days=days or 2.0)
    else:
        result = hist.timings(_target_dsn(target, config_path, ssm_prefix), run_id)
    if as_json:
        crit = result.critical_group
        _echo_json(result, critical_group=crit.group if crit else None,
                   wall_seconds=result.wall_seconds)
    else:
        render_timings(console(), result, limit=limit or None)


def _echo_json(result, **extra) -> None:
    import dataclasses

    click.echo(json.dumps({**dataclasses.asdict(result), **extra}, indent=2, default=str))


# ---------------------------------------------------------------------------------- plan

@click.command("plan", short_help="Balance the tables over K groups from measured times.")
@config_options
@click.option("--groups", "k", type=click.IntRange(min=1), required=True, metavar="K",
              help="How many groups to propose.")
@click.option("--runs", "--nights", "nights", type=click.IntRange(min=1), default=7,
              show_default=True, metavar="RUNS",
              help="Average each table over its last RUNS measured copies (--nights: the old "
                   "name).")
@run_flag(JOBS)
@click.option("--write-ssm", is_flag=True,
              help="Write the proposal to PREFIX/table_groups (prints the old value).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--allow-split", is_flag=True,
              help="Balance tables linked by foreign keys, inheritance or target views into "
                   "different groups (their keys are then not created on the target; each "
                   "split is named in a warning). Default: keep them in one group.")
def plan_command(config_path, ssm_prefix, k, nights, jobs, write_ssm, as_json, allow_split):
    """Balance the tables over K groups from measured times (longest first)."""
    from nightcopy.cli.render import console, render_plan, render_toml_groups
    from nightcopy.ops.plan import plan_from_config, write_table_groups

    if write_ssm and not ssm_prefix:
        raise click.UsageError("--write-ssm needs --ssm-prefix PREFIX")
    config = _load(config_path, ssm_prefix)
    with _hints_from(config):
        plan = plan_from_config(config, k, nights, jobs, allow_split)
    con = console()
    if as_json:
        click.echo(json.dumps(plan.as_dict(), indent=2, default=str))
    else:
        render_plan(con, plan, origin=config.origin)
    if write_ssm:
        name, old = write_table_groups(ssm_prefix, plan.table_groups_json())
        err = console(stderr=True) if as_json else con
        err.print(f"Wrote {name}. Previous value (to undo, put it back with aws ssm "
                  f"put-parameter --name {name} --overwrite --value '<old value>'):")
        err.print(old if old is not None else "(the parameter did not exist)", markup=False,
                  soft_wrap=True)
        err.print("New value:")
        err.print(plan.table_groups_json(), markup=False, soft_wrap=True)
    elif not as_json:
        if config.ssm_prefix:
            con.print(f"To apply: nightcopy plan --ssm-prefix {config.ssm_prefix} --groups {k} "
                      "--write-ssm   (prints the old value so it can be undone)")
        else:
            render_toml_groups(con, plan)


# ------------------------------------------------------------------------------ validate

@click.command("validate", short_help="Check a configuration without copying anything.")
@config_options
@click.option("--slack/--no-slack", default=None,
              help="Require Slack settings (--slack), or skip them (--no-slack) (default: check "
                   "them when the config has some).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON ({origin, ok, problems, checked}).")
def validate_command(config_path, ssm_prefix, slack, as_json):
    """Check a configuration without copying: DSNs, tables, groups, Slack."""
    from nightcopy.cli.render import console
    from nightcopy.ops import config_file
    from nightcopy.ops.validate import validate_config

    con = console()
    try:
        # Groups whose names do not fit are kept, so validate names each of them among the
        # other problems instead of stopping at the first.
        config = config_file.load(config_path, ssm_prefix, check_group_names=False)
    except ConfigError as exc:
        if as_json:
            _echo_json_dict({"origin": None, "ok": False, "problems": [str(exc)], "checked": []})
        else:
            con.print(f"problem: {exc}", soft_wrap=True)
        raise NightcopyError("the configuration is not usable (1 problem)") from None
    from nightcopy.cli.db_auth import install

    install(config.options)
    report = validate_config(config, check_slack=slack)
    n = len(report.problems)
    if as_json:
        _echo_json_dict({"origin": config.origin, "ok": not n, "problems": report.problems,
                         "checked": report.checked})
    else:
        for line in report.problems:
            con.print(f"problem: {line}", soft_wrap=True, style="red")
        if not n:
            con.print(f"{config.origin}: OK (" + "; ".join(report.checked) + ")", soft_wrap=True)
    if n:
        raise NightcopyError(f"{config.origin}: {n} problem{'s' if n > 1 else ''}")


def _echo_json_dict(value: dict) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


# ---------------------------------------------------------------------------------- prune

@click.command("prune", short_help="Remove runs older than N days from the ledger.")
@config_options
@_target_option
@click.option("--keep-days", type=click.IntRange(min=1), default=90, show_default=True,
              metavar="N", help="Keep the runs of the last N days (about three months by "
                                "default: docs/operating.md says why).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def prune_command(config_path, ssm_prefix, target, keep_days, dry_run):
    """Remove the runs older than --keep-days from the ledger in the target (their invocations
    and table results); which tables are nightcopy's is kept."""
    from nightcopy.ops.prune import prune

    result = prune(_target_dsn(target, config_path, ssm_prefix), keep_days, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    if not result.runs:
        click.echo(f"nothing to prune: no run ended more than {keep_days} days ago")
        return
    shown = ", ".join(result.runs[:5]) + (f", ...{len(result.runs) - 5} more"
                                          if len(result.runs) > 5 else "")
    click.echo(f"{verb} {len(result.runs)} run{'s' if len(result.runs) > 1 else ''} older than "
               f"{keep_days} days ({result.invocations} invocations, {result.table_results} "
               f"table results): {shown}")


COMMANDS = [run_command, demo_command, history_command, timings_command, plan_command,
            validate_command, prune_command]


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
