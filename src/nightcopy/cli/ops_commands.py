"""Operator commands: demo, history, timings, plan, validate, prune (thin: options and output;
`run` is in run_command.py).

The work happens in nightcopy.ops (.history, .plan, .validate, .prune) and cli/demo.py; these
functions only turn options into calls and results into terminal output.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from nightcopy.cli.command_config import (
    config_options,
    echo_json_dict,
    hints_from,
    load_config,
    target_dsn,
)
from nightcopy.cli.option_flags import run_flag
from nightcopy.cli.run_command import run_command
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.options import JOBS

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
        result = hist.history(target_dsn(target, config_path, ssm_prefix), nights)
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
        result = hist.timings(target_dsn(target, config_path, ssm_prefix), run_id)
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
    config = load_config(config_path, ssm_prefix)
    with hints_from(config):
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
            echo_json_dict({"origin": None, "ok": False, "problems": [str(exc)], "checked": []})
        else:
            con.print(f"problem: {exc}", soft_wrap=True)
        raise NightcopyError("the configuration is not usable (1 problem)") from None
    from nightcopy.cli.db_auth import install

    install(config.options)
    report = validate_config(config, check_slack=slack)
    n = len(report.problems)
    if as_json:
        echo_json_dict({"origin": config.origin, "ok": not n, "problems": report.problems,
                         "checked": report.checked})
    else:
        for line in report.problems:
            con.print(f"problem: {line}", soft_wrap=True, style="red")
        if not n:
            con.print(f"{config.origin}: OK (" + "; ".join(report.checked) + ")", soft_wrap=True)
    if n:
        raise NightcopyError(f"{config.origin}: {n} problem{'s' if n > 1 else ''}")


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

    result = prune(target_dsn(target, config_path, ssm_prefix), keep_days, dry_run=dry_run)
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
