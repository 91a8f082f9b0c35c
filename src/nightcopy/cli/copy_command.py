"""`nightcopy copy`: the worker command line (the worker contract, README "The worker").

Precedence for every option: flag > NIGHTCOPY_* environment > the config file (--config, read
only when given) > SSM PREFIX/options > default.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

import click

from nightcopy.aws.s3_reports import report_writer
from nightcopy.cli.db_auth import install as install_auth
from nightcopy.cli.dsn_warnings import warn_about_passwords_in_argv
from nightcopy.cli.option_flags import check_name_flag, copy_flag, flags
from nightcopy.engine.events import EventWriter
from nightcopy.engine.invocation import CopyOptions, copy_tables, new_run_id
from nightcopy.engine.table_groups import find_group
from nightcopy.engine.tablelist import with_schemas
from nightcopy.errors import ConfigError, ConnectError
from nightcopy.options import (
    GROUP,
    RUN_ID,
    SOURCE_DSN,
    TARGET_DSN,
    WORKER_OPTIONS,
    Place,
    resolve,
    settable_in,
)

if TYPE_CHECKING:  # the worker reads a config file only when told: imported then
    from nightcopy.ops.config_file import RunConfig

COPY_OPTIONS = settable_in(Place.COPY)  # in --help order
DSN_FLAGS = {o.name: (o.flag, o.envvar, f"PREFIX/{o.name}") for o in (SOURCE_DSN, TARGET_DSN)}


@click.command("copy", short_help="Copy tables to the target database (the worker).")
@flags(copy_flag, COPY_OPTIONS)
@click.option("--dry-run", is_flag=True, default=None,
              help="List what would be copied (tables after globs and exclusions, sizes, row "
                   "estimates, what would fail and why, the swap units) as table_planned "
                   "lines and a dry_run_summary; write nothing anywhere (no ledger, no report).")
def copy_command(**given: object) -> None:
    """Copy tables from the source to the target database (the worker).

    Prints one JSON object per line on stdout; errors go to stderr. Exit 0 when every table was
    copied and verified, 1 on any failure, 2 for command-line usage errors.
    """
    warn_about_passwords_in_argv(click.get_current_context(), DSN_FLAGS)
    # SIGTERM (CodeBuild stopping a build, `nightcopy run` stopping its workers, systemd) as
    # Ctrl-C: the engine records the run as interrupted and says how to resume.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    options, file_cfg, from_file = _resolve_with_origin(given)
    install_auth({"source_auth": options.source_auth, "target_auth": options.target_auth})
    events = EventWriter(options.run_id, options.group)
    try:
        result = copy_tables(options, events)
    except ConnectError as exc:
        # A DSN from the --config file: the hint names its key there, not every flag.
        if file_cfg is not None and exc.role in from_file:
            from nightcopy.ops.dsn_origin import restated

            raise restated(exc, file_cfg) from None
        raise
    sys.exit(0 if result.ok else 1)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def options_from_argv(argv: list[str]) -> CopyOptions:
    """What `nightcopy copy ARGV` would run with (flags, NIGHTCOPY_*, SSM options, defaults),
    without copying anything: click.UsageError or ConfigError for bad input."""
    with copy_command.make_context("copy", list(argv)) as ctx:
        return _resolve(ctx.params)


def _resolve(given: dict) -> CopyOptions:
    return _resolve_with_origin(given)[0]


def _resolve_with_origin(given: dict) -> tuple[CopyOptions, RunConfig | None, set[str]]:
    """The options, the --config file's configuration (None without one), and the roles
    (source, target) whose DSN came from it."""
    values = {k: v for k, v in given.items() if v is not None}
    # Checked first: a group name or run id that could steer the report out of its location
    # is refused before SSM is read or anything is connected to.
    for option in (GROUP, RUN_ID):
        if option.name in values:
            check_name_flag(option, values[option.name])
    # A config file only when told (--config / NIGHTCOPY_CONFIG): below the flags and
    # NIGHTCOPY_*, above SSM (flag > environment > config file > SSM options > default).
    file_options: dict = {}
    file_tables = None
    file_cfg: RunConfig | None = None
    from_file: set[str] = set()
    if values.get("config"):
        from nightcopy.ops.config_file import load_file

        file_cfg = load_file(str(values["config"]), require_dsns=False)
        for key, value in (("source_dsn", file_cfg.source_dsn),
                           ("target_dsn", file_cfg.target_dsn), ("mask_key", file_cfg.mask_key)):
            if value and key not in values:
                values[key] = value
                if key.endswith("_dsn"):
                    from_file.add(key.removesuffix("_dsn"))
        file_options = file_cfg.options
        if "tables" not in values and values.get("group"):
            file_tables = find_group(file_cfg.groups, str(values["group"])).tables
    prefix = values.get("ssm_prefix")
    ssm_tables = None
    ssm_options: dict = {}
    if prefix:
        from nightcopy.aws.ssm import WORKER_PARAMETERS, load_config

        required = tuple(name for name in ("source_dsn", "target_dsn") if name not in values)
        cfg = load_config(prefix, required=required, parameters=WORKER_PARAMETERS)
        values.setdefault("source_dsn", cfg.source_dsn)
        values.setdefault("target_dsn", cfg.target_dsn)
        if cfg.mask_key:
            values.setdefault("mask_key", cfg.mask_key)
        ssm_options = cfg.options
        if "tables" not in values and values.get("group") and file_tables is None:
            if cfg.table_groups is None:
                raise ConfigError(f"SSM parameter {cfg.prefix}/table_groups does not exist: "
                                  "create it, or pass --tables")
            ssm_tables = find_group(cfg.table_groups, str(values["group"])).tables
    listed = values.get("tables") if "tables" in values else (
        file_tables if file_tables is not None else ssm_tables)
    tables = with_schemas(listed, values.get("schema"))
    if tables is None:
        raise ConfigError("no tables to copy: pass --tables (or NIGHTCOPY_TABLES) or --schema, "
                          "or --group with --config FILE or --ssm-prefix to take the group's "
                          "list from its [[groups]] or table_groups")
    if not values.get("source_dsn"):
        raise ConfigError("no source database: pass --source or set NIGHTCOPY_SOURCE_DSN "
                          "(or source_dsn in the --config file or under --ssm-prefix)")
    if not values.get("target_dsn"):
        raise ConfigError("no target database: pass --target or set NIGHTCOPY_TARGET_DSN "
                          "(or target_dsn in the --config file or under --ssm-prefix)")
    # SSM options were checked by load_config (the check `run` and `validate` apply too); the
    # ones that are not the worker's (`parallel`, for `nightcopy run`) are ignored here.
    # An execution's per-run options (nightcopy.aws.execution_input) rank above SSM options.
    from nightcopy.aws.execution_input import execution_options_from_environment

    values.update(resolve([values, execution_options_from_environment(), file_options,
                           ssm_options], WORKER_OPTIONS))
    # Building the writer checks --report-uri now, before anything is copied.
    writer = report_writer(str(values["report_uri"])) if values.get("report_uri") else None
    run_id = values.get("run_id") or new_run_id()
    options = CopyOptions(source_dsn=str(values["source_dsn"]), target_dsn=str(values["target_dsn"]),
                       tables=tables if isinstance(tables, list) else str(tables),
                       group=values.get("group"), run_id=run_id, jobs=int(values["jobs"]),
                       strategy=str(values["strategy"]), verify=str(values["verify"]),
                       report_writer=writer, retries=int(values["retries"]),
                       lock_timeout=float(values["lock_timeout"]),
                       lock_attempts=int(values["lock_attempts"]), trust=values.get("trust"),
                       adopt=bool(values["adopt"]),
                       create_extensions=bool(values["create_extensions"]),
                       swap_scope=str(values["swap_scope"]),
                       cancel_blockers_after=values.get("cancel_blockers_after"),
                       shrink_guard=values["shrink_guard"],
                       shrink_guard_min_rows=int(values["shrink_guard_min_rows"]),
                       allow_shrink=values.get("allow_shrink"),
                       mask_key=values.get("mask_key"),
                       sensitive_column_patterns=str(values["sensitive_column_patterns"]),
                       exclude_table=values.get("exclude_table"), schema=values.get("schema"),
                       source_auth=str(values["source_auth"]),
                       target_auth=str(values["target_auth"]),
                       dry_run=bool(given.get("dry_run")))
    return options, file_cfg, from_file

