"""Operator commands: run, demo, history, timings, plan, validate (thin: options and output).

The work happens in nightcopy.ops.local_run, .demo, .history, .plan and .validate; these functions only
turn options into calls and results into terminal output.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from nightcopy.cli.dsn_warnings import warn_about_passwords_in_argv
from nightcopy.cli.option_flags import check_name_flag, flags, run_flag
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.options import GROUP, JOBS, PARALLEL, RUN_ID, Place, settable_in

_config_options = [
    click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                 help="nightcopy.toml to read (default: ./nightcopy.toml)."),
    click.option("--ssm-prefix", default=None, metavar="PREFIX",
                 help="Read the configuration from SSM parameters under PREFIX instead."),
]


def config_options(func):
    for option in reversed(_config_options):
        func = option(func)
    return func


def _load(config_path: str | None, ssm_prefix: str | None):
    from nightcopy.ops import config_file

    return config_file.load(config_path, ssm_prefix)


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


@click.command("run")
@config_options
@flags(_run_flag, RUN_OPTIONS)
@click.option("--run-id", default=None,
              help="Reuse a run id to resume it: tables it already copied are skipped.")
@click.option("--group", "only", multiple=True, metavar="NAME",
              help="Run only this group (repeatable).")
@click.option("--slack/--no-slack", default=False,
              help="Post the report to Slack, as the notifier does after an AWS night.")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None,
              help="Keep the workers' reports and messages here (RUN_ID/GROUP.json, .log).")
def run_command(config_path, ssm_prefix, run_id, only, slack, report_dir, **given):
    """Run every group on this machine, with the same worker as CodeBuild, and report."""
    from nightcopy.cli.progress import observer_for, render_outcome
    from nightcopy.cli.render import console
    from nightcopy.ops.local_run import new_run_id, post_to_slack, prepare_groups, run_groups

    for name in only:
        check_name_flag(GROUP, name, envvar=False)
    if run_id is not None:
        check_name_flag(RUN_ID, run_id, envvar=False)
    config = _load(config_path, ssm_prefix)
    if slack and not config.slack_configured:
        raise ConfigError(f"--slack: {config.origin} has no Slack settings (webhook_url, or "
                          "bot_token and channel)")
    options, parallel = run_settings(config, given)
    groups = prepare_groups(config, only)
    con = console()
    outcome = run_groups(
        groups, source_dsn=config.source_dsn, target_dsn=config.target_dsn,
        run_id=run_id or new_run_id(), parallel=parallel or len(groups),
        options=options, observer=observer_for(con),
        report_dir=Path(report_dir) if report_dir else None, mask_key=config.mask_key,
    )
    render_outcome(con, outcome)
    if slack:
        post_to_slack(config, outcome)
        con.print("Slack report posted.")
    if not outcome.ok:
        failed = [g["group"] for g in outcome.failed_groups()]
        raise NightcopyError(f"run {outcome.run_id} failed: {len(failed)} of "
                             f"{len(outcome.groups)} groups ({', '.join(failed)}); the summary "
                             "above says why")


# ---------------------------------------------------------------------------------- demo

@click.command("demo")
@click.option("--scale", type=click.FloatRange(min=0.001, max=20), default=1.0,
              envvar="NIGHTCOPY_DEMO_SCALE", show_default=True,
              help="Dataset size factor (1.0: about 575,000 rows over 20 tables).")
@click.option("--parallel", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
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
    "--target", envvar="NIGHTCOPY_TARGET_DSN", default=None, metavar="DSN",
    help="Target database holding the ledger (default: the config's target_dsn).")
_logs_options = [
    click.option("--from-logs", is_flag=True,
                 help="Read the workers' lines in CloudWatch Logs instead of the ledger."),
    click.option("--log-group", envvar="NIGHTCOPY_LOG_GROUP", default=None, metavar="NAME",
                 help="The CodeBuild log group (with --from-logs)."),
    click.option("--days", type=click.FloatRange(min=0.01), default=None,
                 help="How far back to search the logs (default: 2 days for timings, "
                      "nights + 1 for history)."),
]


def logs_options(func):
    for option in reversed(_logs_options):
        func = option(func)
    return func


def _need_log_group(from_logs: bool, log_group: str | None) -> None:
    if from_logs and not log_group:
        raise click.UsageError("--from-logs needs --log-group NAME (or NIGHTCOPY_LOG_GROUP)")


@click.command("history")
@config_options
@_target_option
@logs_options
@click.option("--nights", type=click.IntRange(min=1), default=7, show_default=True,
              help="How many recent runs to show.")
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


@click.command("timings")
@config_options
@_target_option
@logs_options
@click.option("--run-id", default=None, help="The run to show (default: the latest).")
@click.option("--limit", type=click.IntRange(min=0), default=30, show_default=True,
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

@click.command("plan")
@config_options
@click.option("--groups", "k", type=click.IntRange(min=1), required=True,
              help="How many groups to propose.")
@click.option("--nights", type=click.IntRange(min=1), default=7, show_default=True,
              help="Average each table over its last N measured copies.")
@run_flag(JOBS)
@click.option("--write-ssm", is_flag=True,
              help="Write the proposal to PREFIX/table_groups (prints the old value).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_command(config_path, ssm_prefix, k, nights, jobs, write_ssm, as_json):
    """Balance the tables over K groups from measured times (longest first)."""
    from nightcopy.cli.render import console, render_plan, render_toml_groups
    from nightcopy.ops.plan import plan_from_config, write_table_groups

    if write_ssm and not ssm_prefix:
        raise click.UsageError("--write-ssm needs --ssm-prefix PREFIX")
    config = _load(config_path, ssm_prefix)
    plan = plan_from_config(config, k, nights, jobs)
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

@click.command("validate")
@config_options
@click.option("--no-slack", is_flag=True, help="Do not require Slack settings.")
def validate_command(config_path, ssm_prefix, no_slack):
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
        con.print(f"problem: {exc}", markup=False, soft_wrap=True)
        raise NightcopyError("the configuration is not usable (1 problem)") from None
    report = validate_config(config, check_slack=not no_slack)
    for line in report.problems:
        con.print(f"problem: {line}", markup=False, soft_wrap=True, style="red")
    if report.problems:
        n = len(report.problems)
        raise NightcopyError(f"{config.origin}: {n} problem{'s' if n > 1 else ''}")
    con.print(f"{config.origin}: OK (" + "; ".join(report.checked) + ")", markup=False,
              soft_wrap=True)


COMMANDS = [run_command, demo_command, history_command, timings_command, plan_command,
            validate_command]


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
