"""`nightcopy copy`: the worker command line (design.md, "worker contract").

Precedence for every option: flag > NIGHTCOPY_* environment > SSM PREFIX/options > default.
"""

from __future__ import annotations

import sys

import click

from nightcopy.engine.events import EventWriter
from nightcopy.engine.invocation import CopyOptions, copy_tables, new_run_id
from nightcopy.engine.invocation_report import check_report_uri
from nightcopy.engine.table_groups import find_group
from nightcopy.errors import ConfigError

DEFAULTS = {"jobs": 2, "strategy": "swap", "verify": "count", "report_uri": None, "retries": 1,
            "lock_timeout": 2.0, "lock_attempts": 6}
_CHOICES = {"strategy": ("swap", "truncate"), "verify": ("count", "checksum")}
_NUMBERS = {"jobs": (int, 1, 64), "retries": (int, 0, 10), "lock_timeout": (float, 0.001, 3600),
            "lock_attempts": (int, 1, 100)}


def _from_ssm_options(name: str, value: object) -> object:
    """Check an option that came from SSM PREFIX/options (a config error, exit 1)."""
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ConfigError(f"SSM options: {name} must be one of {', '.join(_CHOICES[name])}")
        return value
    if name in _NUMBERS:
        kind, low, high = _NUMBERS[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(f"SSM options: {name} must be a number from {low} to {high}")
        return kind(value)
    if name == "report_uri" and not isinstance(value, str):
        raise ConfigError("SSM options: report_uri must be a string like s3://bucket/prefix")
    return value


@click.command("copy")
@click.option("--tables", envvar="NIGHTCOPY_TABLES", help="Tables: comma-separated or a JSON "
              'array; schema.table, globs in unquoted parts (sales.*), quoted names ("Order Items").')
@click.option("--group", envvar="NIGHTCOPY_GROUP", help="Group name (labels the run; with "
              "--ssm-prefix also selects the group's tables from table_groups).")
@click.option("--source", envvar="NIGHTCOPY_SOURCE_DSN", help="Source (operational) database DSN.")
@click.option("--target", envvar="NIGHTCOPY_TARGET_DSN", help="Target (reporting) database DSN.")
@click.option("--ssm-prefix", envvar="NIGHTCOPY_SSM_PREFIX",
              help="Read source_dsn, target_dsn, table_groups and options under this SSM path.")
@click.option("--run-id", envvar="NIGHTCOPY_RUN_ID",
              help="Run id; a retry with the same id skips tables already copied.")
@click.option("--jobs", envvar="NIGHTCOPY_JOBS", type=click.IntRange(1, 64),
              help="Tables copied at once [default: 2].")
@click.option("--strategy", envvar="NIGHTCOPY_STRATEGY", type=click.Choice(_CHOICES["strategy"]),
              help="swap: build beside, swap in one short transaction (readers never wait); "
              "truncate: TRUNCATE + COPY in one transaction (readers wait) [default: swap].")
@click.option("--verify", envvar="NIGHTCOPY_VERIFY", type=click.Choice(_CHOICES["verify"]),
              help="count: row counts from COPY; checksum: also compare content [default: count].")
@click.option("--report-uri", envvar="NIGHTCOPY_REPORT_URI",
              help="Write the run report to s3://BUCKET/PREFIX/RUN_ID/GROUP.json (or file:///DIR).")
@click.option("--retries", envvar="NIGHTCOPY_RETRIES", type=click.IntRange(0, 10),
              help="Retries of a table after a lost connection [default: 1].")
@click.option("--lock-timeout", envvar="NIGHTCOPY_LOCK_TIMEOUT", type=click.FloatRange(0.001, 3600),
              help="Seconds one swap may wait for its lock (the longest a reader is held up) "
              "[default: 2].")
@click.option("--lock-attempts", envvar="NIGHTCOPY_LOCK_ATTEMPTS", type=click.IntRange(1, 100),
              help="Tries for the swap lock, with exponential backoff [default: 6].")
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
        from nightcopy.aws.ssm import WORKER_PARAMETERS, load_config

        required = tuple(name for name, key in (("source_dsn", "source"), ("target_dsn", "target"))
                         if key not in values)
        cfg = load_config(prefix, required=required, parameters=WORKER_PARAMETERS)
        values.setdefault("source", cfg.source_dsn)
        values.setdefault("target", cfg.target_dsn)
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
    if not values.get("source"):
        raise ConfigError("no source database: pass --source or set NIGHTCOPY_SOURCE_DSN "
                          "(or source_dsn under --ssm-prefix)")
    if not values.get("target"):
        raise ConfigError("no target database: pass --target or set NIGHTCOPY_TARGET_DSN "
                          "(or target_dsn under --ssm-prefix)")
    for name, default in DEFAULTS.items():
        values.setdefault(name, default)
    if values.get("report_uri"):
        check_report_uri(str(values["report_uri"]))
    run_id = values.get("run_id") or new_run_id()
    if len(run_id) > 200 or not run_id.strip():
        raise ConfigError("--run-id must be 1 to 200 characters")
    return CopyOptions(source_dsn=str(values["source"]), target_dsn=str(values["target"]),
                       tables=tables if isinstance(tables, list) else str(tables),
                       group=values.get("group"), run_id=run_id, jobs=int(values["jobs"]),
                       strategy=str(values["strategy"]), verify=str(values["verify"]),
                       report_uri=values.get("report_uri"), retries=int(values["retries"]),
                       lock_timeout=float(values["lock_timeout"]),
                       lock_attempts=int(values["lock_attempts"]))

