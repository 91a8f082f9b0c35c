"""`nightcopy run`: every group on this machine (thin: options and output; the work is in
nightcopy.ops.local_run)."""

from __future__ import annotations

from pathlib import Path

import click

from nightcopy.cli.command_config import config_options, echo_json_dict, hints_from, load_config
from nightcopy.cli.option_flags import check_name_flag, flags, run_flag
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.options import GROUP, PARALLEL, RUN_ID, Place, settable_in

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
    config = load_config(config_path, ssm_prefix)
    if slack and not config.slack_configured:
        raise ConfigError(f"--slack: {config.origin} has no Slack settings (webhook_url, or "
                          "bot_token and channel)")
    options, parallel = run_settings(config, given)
    from nightcopy.cli.db_auth import install

    install(options)
    with hints_from(config):
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
        echo_json_dict({"run_id": outcome.run_id, "ok": outcome.ok,
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
        echo_json_dict({"run_id": outcome.run_id, "ok": outcome.ok, "dry_run": True,
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
