"""`nightcopy copy`: the worker command line (the worker contract, README "The worker").

Precedence for every option: flag > NIGHTCOPY_* environment > SSM PREFIX/options > default.
"""

from __future__ import annotations

import sys

import click

from nightcopy.cli.option_flags import copy_flags
from nightcopy.engine.events import EventWriter
from nightcopy.engine.invocation import CopyOptions, copy_tables, new_run_id
from nightcopy.engine.invocation_report import check_report_uri
from nightcopy.engine.table_groups import find_group
from nightcopy.errors import ConfigError
from nightcopy.options import BY_NAME, REPORT_URI, Place, settable_in

# Options `copy` takes, in --help order; the worker's tuning defaults (identity options have
# none: they are required or generated).
COPY_OPTIONS = settable_in(Place.COPY)
DEFAULTS = {o.name: o.default for o in COPY_OPTIONS if o.worker or o is REPORT_URI}


def _from_ssm_options(name: str, value: object) -> object:
    """Check an option that came from SSM PREFIX/options (a config error, exit 1)."""
    option = BY_NAME[name]
    if option.choices:
        if value not in option.choices:
            raise ConfigError(f"SSM options: {name} must be one of {', '.join(option.choices)}")
        return value
    if option.kind in (int, float):
        low, high = option.low, option.high
        assert low is not None and high is not None  # every number `copy` takes has a range
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(f"SSM options: {name} must be a number from {low:g} to {high:g}")
        return option.kind(value)
    if name == "report_uri" and not isinstance(value, str):
        raise ConfigError("SSM options: report_uri must be a string like s3://bucket/prefix")
    return value


@click.command("copy")
@copy_flags(COPY_OPTIONS)
def copy_command(**given: object) -> None:
    """Copy tables from the source to the target database (the worker).

    Prints one JSON object per line on stdout; errors go to stderr. Exit 0 when every table was
    copied and verified, 1 on any failure, 2 for command-line usage errors.
    """
    options = _resolve(given)
    events = EventWriter(options.run_id, options.group)
    result = copy_tables(options, events)
    sys.exit(0 if result.ok else 1)


def _resolve(given: dict) -> CopyOptions:
    values = {k: v for k, v in given.items() if v is not None}
    prefix = values.get("ssm_prefix")
    ssm_tables = None
    if prefix:
        from nightcopy.aws.ssm import load_config

        required = tuple(name for name, key in (("source_dsn", "source_dsn"), ("target_dsn", "target_dsn"))
                         if key not in values)
        cfg = load_config(prefix, required=required)
        values.setdefault("source_dsn", cfg.source_dsn)
        values.setdefault("target_dsn", cfg.target_dsn)
        for name, value in cfg.options.items():
            if name not in DEFAULTS:
                raise ConfigError(f"SSM options: unknown option {name!r} (known: "
                                  f"{', '.join(sorted(DEFAULTS))})")
            if name not in values:
                values[name] = _from_ssm_options(name, value)
        if "tables" not in values and values.get("group"):
            if cfg.table_groups is None:
                raise ConfigError(f"SSM parameter {cfg.prefix}/table_groups does not exist: "
                                  "create it, or pass --tables")
            ssm_tables = find_group(cfg.table_groups, str(values["group"])).tables
    tables = values.get("tables") if "tables" in values else ssm_tables
    if tables is None:
        raise ConfigError("no tables to copy: pass --tables (or NIGHTCOPY_TABLES), or --group "
                          "with --ssm-prefix to take the group's list from table_groups")
    if not values.get("source_dsn"):
        raise ConfigError("no source database: pass --source or set NIGHTCOPY_SOURCE_DSN "
                          "(or source_dsn under --ssm-prefix)")
    if not values.get("target_dsn"):
        raise ConfigError("no target database: pass --target or set NIGHTCOPY_TARGET_DSN "
                          "(or target_dsn under --ssm-prefix)")
    for name, default in DEFAULTS.items():
        values.setdefault(name, default)
    if values.get("report_uri"):
        check_report_uri(str(values["report_uri"]))
    run_id = values.get("run_id") or new_run_id()
    if len(run_id) > 200 or not run_id.strip():
        raise ConfigError("--run-id must be 1 to 200 characters")
    return CopyOptions(source_dsn=str(values["source_dsn"]), target_dsn=str(values["target_dsn"]),
                       tables=tables if isinstance(tables, list) else str(tables),
                       group=values.get("group"), run_id=run_id, jobs=int(values["jobs"]),
                       strategy=str(values["strategy"]), verify=str(values["verify"]),
                       report_uri=values.get("report_uri"), retries=int(values["retries"]),
                       lock_timeout=float(values["lock_timeout"]),
                       lock_attempts=int(values["lock_attempts"]))

