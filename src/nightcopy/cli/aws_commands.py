"""`nightcopy start` and `nightcopy watch`: the nightly execution from a terminal.

start: the same start the nightly schedule makes (name `nightly-YYYY-MM-DD`, the same input;
a day that already ran is reported, not repeated; `--rerun` takes the next free `-rN`).
`--finish DATE` finishes that failed night: `nightly-DATE-fN` copies only the failed groups
under the night's run id, so each worker skips the tables it already copied.
watch: follows an execution the way the console graph shows it: one line per state change of
each group (Map iteration), with links to the builds' logs; exit 0 when it succeeded, 1 when it
failed, timed out or was aborted.

The state machine comes from --state-machine-arn / NIGHTCOPY_STATE_MACHINE_ARN, else from the
stack's StateMachineArn output (--stack / NIGHTCOPY_STACK, default "nightcopy"). The AWS calls
are in nightcopy.aws.step_functions, the watching in nightcopy.ops.execution_watch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from nightcopy.aws import step_functions
from nightcopy.errors import ConfigError

_common = [
    click.option("--state-machine-arn", envvar="NIGHTCOPY_STATE_MACHINE_ARN", show_envvar=True,
                 metavar="ARN",
                 help="The nightcopy state machine [default: the stack's output]."),
    click.option("--stack", envvar="NIGHTCOPY_STACK", show_envvar=True, default="nightcopy",
                 show_default=True, metavar="NAME",
                 help="CloudFormation stack to read StateMachineArn/ScheduleTimezone from."),
    click.option("--timezone", envvar="NIGHTCOPY_SCHEDULE_TIMEZONE", show_envvar=True,
                 metavar="TZ",
                 help="Timezone naming the day [default: the stack's ScheduleTimezone, else UTC]."),
]


def common(fn: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


def _day(value: str | None, tz: str, flag: str = "--date") -> date:
    from nightcopy_starter.nightly import StartError, local_date

    if value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{flag} must be YYYY-MM-DD, not {value!r}") from None
    try:
        return local_date(None, tz)
    except StartError as exc:
        raise ConfigError(str(exc)) from None


def _run_options(value: str | None) -> dict[str, Any] | None:
    """--options JSON: checked by the option registry before anything starts."""
    from nightcopy.aws.execution_input import check_execution_options

    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ConfigError("--options must be a JSON object of option: value, e.g. "
                          "'{\"strategy\": \"truncate\"}'") from None
    check_execution_options(parsed)
    return dict(parsed)  # as given: the worker converts them again


@click.command("start", short_help="Start the night's execution now, as the schedule does.")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The night to start [default: today "
              "in the schedule's timezone].")
@click.option("--rerun", is_flag=True, help="Copy that day again under the next free name "
              "(nightly-DATE-r2, -r3, ...) with a fresh snapshot.")
@click.option("--finish", "finish_day", metavar="YYYY-MM-DD", help="Finish that failed night: "
              "copy only its failed groups under its run id (nightly-DATE-f1, -f2, ...); each "
              "worker skips the tables the night already copied.")
@click.option("--options", "options_json", metavar="JSON", help="Worker options for this run "
              "only (as in SSM options), e.g. '{\"strategy\": \"truncate\"}'.")
@common
def start(day: str | None, rerun: bool, finish_day: str | None, options_json: str | None,
          state_machine_arn: str | None, stack: str, timezone: str | None) -> None:
    """Start the nightly execution now (what the schedule does at night)."""
    if finish_day and (day or rerun):
        raise click.UsageError("--finish DATE names the night itself: leave out --date and "
                               "--rerun")
    if options_json is not None and not finish_day:
        raise click.UsageError("--options applies to --finish (the nightly input stays as the "
                               "schedule sends it)")
    options = _run_options(options_json)
    sfn, cfn = step_functions.clients()
    machine = step_functions.find_state_machine(cfn, state_machine_arn, stack, timezone)
    if finish_day:
        night = _day(finish_day, machine.schedule_timezone, flag="--finish")
        result = step_functions.finish_night(sfn, machine, night, options)
    else:
        result = step_functions.start_night(sfn, machine, _day(day, machine.schedule_timezone),
                                            rerun=rerun)
    click.echo(result.describe())
    click.echo(step_functions.execution_console_url(result.execution_arn))
    if result.outcome not in ("already_ran", "complete"):
        click.echo(f"follow it: nightcopy watch {result.name}")


@click.command("watch", short_help="Follow an execution group by group.")
@click.argument("execution", required=False)
@click.option("--interval", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              metavar="SECONDS",
              help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Print the current state and exit (no following).")
@common
def watch(execution: str | None, interval: float, once: bool, state_machine_arn: str | None,
          stack: str, timezone: str | None) -> None:
    """Follow an execution group by group [default: today's nightly-YYYY-MM-DD].

    Exit 0 when it succeeded, 1 when it failed, timed out or was aborted.
    """
    from nightcopy_starter.nightly import execution_arn, execution_name

    from nightcopy.ops.execution_watch import watch_execution

    sfn, cfn = step_functions.clients()
    if execution and execution.startswith("arn:"):
        arn = execution
    else:
        machine = step_functions.find_state_machine(cfn, state_machine_arn, stack, timezone)
        name = execution or execution_name(_day(None, machine.schedule_timezone))
        arn = execution_arn(machine.arn, name)
    watch_execution(sfn, arn, interval=interval, once=once, say=click.echo,
                    hint_if_missing=None if execution else
                    "today's night has not started yet? `nightcopy start` starts it")
