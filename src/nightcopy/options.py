"""Every option of nightcopy, defined once: name, type, range or choices, default, help, and the
places a user may set it.

The places (`Place`): the worker's `nightcopy copy --flag` with its `NIGHTCOPY_<NAME>`
variable, `nightcopy run --flag`, the config file's `[options]` and SSM `PREFIX/options`. The
click options of `copy` and `run`, the checks of `[options]` and SSM `options`, the worker argv
`run` builds and the engine's defaults are all derived from this table, so they cannot drift.

Foundation level: only the standard library and nightcopy.errors, so every layer may import it.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, cast

from nightcopy.errors import ConfigError

T = TypeVar("T")


class Place(enum.Enum):
    COPY = "copy"  # `nightcopy copy --flag` and its NIGHTCOPY_<NAME> variable
    RUN = "run"  # `nightcopy run --flag` (and its NIGHTCOPY_<NAME> variable)
    CONFIG = "config"  # nightcopy.toml [options]
    SSM = "ssm"  # SSM PREFIX/options (read by `copy --ssm-prefix` and `run --ssm-prefix`)


COPY_ONLY = frozenset({Place.COPY})
EVERYWHERE = frozenset(Place)


@dataclass(frozen=True)
class Option(Generic[T]):
    name: str  # the key in [options] / SSM options, and the CopyOptions field
    kind: type  # int, float, str or bool
    default: T
    help: str
    metavar: str
    places: frozenset[Place]
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    flag_name: str | None = None  # when the flag is not --<name with dashes>
    # For an option that is not settable in [options] / SSM options: where it belongs instead.
    belongs: str = ""
    # For a string that becomes part of a path or a name elsewhere (group, run id): its form.
    pattern: re.Pattern[str] | None = None
    # A number that may also be switched off: the word "off" (or false in TOML/JSON) is kept
    # as the string "off" (not None, which means "not set here" to resolve()).
    off_word: bool = False
    # A one-letter flag, as pg_dump spells it (-t tables, -j jobs), for the common options.
    short: str = ""

    @property
    def flag(self) -> str:
        """The flag's declaration: `--name`, or `--name/--no-name` for a boolean."""
        if self.kind is bool:
            dashed = self.name.replace("_", "-")
            return f"--{dashed}/--no-{dashed}"
        return self.flag_name or "--" + self.name.replace("_", "-")

    @property
    def envvar(self) -> str:
        return "NIGHTCOPY_" + self.name.upper()

    @property
    def worker(self) -> bool:
        """An option of the worker itself that `run` and the configs pass on to it."""
        return self.places == EVERYWHERE

    def describe(self) -> str:
        """What a valid value is, for messages: 'a number from 1 to 64', 'one of swap, ...'."""
        if self.kind is bool:
            return "true or false"
        if self.off_word:
            return f"a number from {self.low:g} to {self.high:g}, or off"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern is not None:
            return NAME_RULE
        if self.kind in (int, float):
            if self.high is None:
                return f"a number of at least {self.low:g}"
            return f"a number from {self.low:g} to {self.high:g}"
        return "a string"

    def default_text(self) -> str:
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def parse(self, value: object) -> T:
        """The value as this option's type; ValueError('must be ...') when it is not valid.

        Strings are accepted for numbers (flags and NIGHTCOPY_* variables are strings, and SSM
        options are often written {"jobs": "4"}); booleans never are.
        """
        problem = f"must be {self.describe()}"
        if self.off_word and (value is False or (isinstance(value, str)
                                                 and value.strip().lower() == "off")):
            return cast(T, "off")
        if self.kind is bool:
            return cast(T, _parse_bool(value, problem))
        if self.kind is str:
            if not isinstance(value, str) or not value.strip():
                raise ValueError(problem)
            if self.choices and value not in self.choices:
                raise ValueError(problem)
            if self.pattern is not None and not self.pattern.fullmatch(value):
                raise ValueError(problem)
            return cast(T, value)
        number: float
        if isinstance(value, bool):
            raise ValueError(problem)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(problem) from None
        elif isinstance(value, int | float):
            number = value
        else:
            raise ValueError(problem)
        if not math.isfinite(number) or (self.low is not None and number < self.low) or (
                self.high is not None and number > self.high):
            raise ValueError(problem)
        if self.kind is int:
            if number != int(number):
                raise ValueError(f"{problem} (a whole number)")
            return cast(T, int(number))
        return cast(T, float(number))

    def to_argv(self, value: object) -> list[str]:
        """The value as command-line arguments: `--flag VALUE`, or `--name` / `--no-name`."""
        if self.kind is bool and "/" in self.flag:
            on, off = self.flag.split("/")
            return [on if value else off]
        return [self.flag, self.to_arg(value)]

    def to_arg(self, value: object) -> str:
        """The value as a command-line argument (`run` passes options to workers as flags)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value)  # round-trips exactly
        return str(value)


# A boolean from TOML/JSON (true/false) or from a flag or NIGHTCOPY_* variable (text).
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _parse_bool(value: object, problem: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError(problem)


def _number(name: str, kind: type, default: Any, low: float, high: float | None, help: str,
            metavar: str, places: frozenset[Place] = EVERYWHERE) -> Option[Any]:
    return Option(name, kind, default, help, metavar, places, low=low, high=high)


# Group names and run ids become parts of paths and names elsewhere: the report's key
# (PREFIX/RUN_ID/GROUP.json, a file or an S3 object), `nightcopy run`'s worker logs, Step Functions
# execution names (at most 80 of these characters). So they are restricted to a form that can
# neither climb out of a directory (`..`, `/`) nor surprise a shell, a URL or a log query; every
# run id nightcopy or the starter Lambda makes (`nightly-2026-12-03-r2`) fits.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")
NAME_RULE = "1 to 80 letters, digits, '-' or '_'"


def name_problem(value: object) -> str | None:
    """Why a group name or run id does not fit NAME_PATTERN, or None when it fits."""
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return None
    return f"must be {NAME_RULE}, not {_shown(value)}"


_SET_PER_WORKER = ("it names one worker's input: `nightcopy run` and the state machine set it "
                   "for each worker")

# --- identity: what one invocation or night is (flags and NIGHTCOPY_* of `copy` only) ---
TABLES: Option[str | None] = Option(
    "tables", str, None,
    'Tables: comma-separated or a JSON array; schema.table, globs in unquoted parts (sales.*), '
    'quoted names ("Order Items").', "LIST", COPY_ONLY, short="-t",
    belongs="list each group's tables in [[groups]] (nightcopy.toml) or PREFIX/table_groups "
            "(SSM), or pass copy --tables")
GROUP: Option[str | None] = Option(
    "group", str, None,
    "Group name (labels the run; with --ssm-prefix also selects the group's tables from "
    f"table_groups): {NAME_RULE}.", "NAME", COPY_ONLY, pattern=NAME_PATTERN,
    belongs="groups are named in [[groups]] (nightcopy.toml) or PREFIX/table_groups (SSM); "
            "pass copy --group or run --group")
SOURCE_DSN: Option[str | None] = Option(
    "source_dsn", str, None, "Source (operational) database DSN.", "DSN", COPY_ONLY,
    flag_name="--source",
    belongs="set source_dsn at the top of nightcopy.toml or as the SSM parameter "
            "PREFIX/source_dsn (SecureString)")
TARGET_DSN: Option[str | None] = Option(
    "target_dsn", str, None, "Target (reporting) database DSN.", "DSN", COPY_ONLY,
    flag_name="--target",
    belongs="set target_dsn at the top of nightcopy.toml or as the SSM parameter "
            "PREFIX/target_dsn (SecureString)")
# The key of "hmac" column masks (engine/column_masks) is a secret like the DSNs: never in the
# shared options (SSM options is a plain String, and `run` puts worker options on argv).
MASK_KEY: Option[str | None] = Option(
    "mask_key", str, None,
    'Key of "hmac" column masks (a secret, 16+ characters); prefer NIGHTCOPY_MASK_KEY.', "KEY",
    COPY_ONLY,
    belongs="it is a secret: set mask_key at the top of nightcopy.toml or as the SSM "
            "parameter PREFIX/mask_key (SecureString), or NIGHTCOPY_MASK_KEY")
# pg_dump's -n: every table of these schemas (SCHEMA.* in the table list), besides --tables.
SCHEMA: Option[str | None] = Option(
    "schema", str, None,
    "Schemas (comma-separated, globs in unquoted names) whose tables are copied besides "
    "--tables: each adds SCHEMA.* to the list", "SCHEMAS", COPY_ONLY, short="-n",
    belongs="it selects tables like the table list: write SCHEMA.* in the group's tables "
            "([[groups]] or PREFIX/table_groups), or pass copy --schema")
# The worker reads a config file only when told: in CodeBuild's git mode the working directory is
# the repository, where a committed development nightcopy.toml must not be picked up in prod.
CONFIG: Option[str | None] = Option(
    "config", str, None,
    "Read source_dsn, target_dsn, mask_key, [options] and (with --group) the group's tables from "
    "this nightcopy.toml; never read unless given", "FILE", COPY_ONLY,
    belongs="it says where the options are: pass copy --config or NIGHTCOPY_CONFIG")
SSM_PREFIX: Option[str | None] = Option(
    "ssm_prefix", str, None,
    "Read source_dsn, target_dsn, table_groups and options under this SSM path.", "PREFIX",
    COPY_ONLY, belongs="it says where the options are: pass --ssm-prefix or NIGHTCOPY_SSM_PREFIX")
RUN_ID: Option[str | None] = Option(
    "run_id", str, None,
    f"Run id ({NAME_RULE}); a retry with the same id skips tables already copied.", "ID",
    COPY_ONLY, pattern=NAME_PATTERN, belongs=f"{_SET_PER_WORKER}; pass copy --run-id or run --run-id")
# Where the worker's report goes is wiring, not tuning: the stack sets it for every worker
# (template.yaml) and `nightcopy run` points it at its own directory (--report-dir), so a value
# in the shared options would either be overridden or send reports where the notifier never
# looks.
REPORT_URI: Option[str | None] = Option(
    "report_uri", str, None,
    "Write the run report to s3://BUCKET/PREFIX/RUN_ID/GROUP.json (or file:///DIR).", "URI",
    COPY_ONLY, belongs=f"{_SET_PER_WORKER}; pass copy --report-uri (NIGHTCOPY_REPORT_URI) or "
                       "run --report-dir")

# --- the worker's tuning: settable in every place a user configures a night ---
# pg_dump's -T: tables left out of whatever the list (names and globs) selects. A worker option,
# so one exclusion in [options] or SSM options holds for every group (scratch tables, `*.tmp_*`).
EXCLUDE_TABLE: Option[str | None] = Option(
    "exclude_table", str, None,
    "Tables (the --tables grammar, globs) left out of the list even when it names or matches "
    "them", "TABLES", EVERYWHERE, short="-T")
JOBS: Option[int] = replace(_number("jobs", int, 2, 1, 64, "Tables copied at once", "N"),
                            short="-j")
STRATEGY: Option[str] = Option(
    "strategy", str, "swap",
    "swap: build beside, swap in one short transaction per --swap-scope unit (readers wait at "
    "most --lock-timeout, never get an error); truncate: TRUNCATE + COPY in one transaction "
    "(readers wait for the load)", "[swap|truncate]", EVERYWHERE,
    choices=("swap", "truncate"))
VERIFY: Option[str] = Option(
    "verify", str, "count", "count: row counts from COPY; checksum: also compare content",
    "[count|checksum]", EVERYWHERE, choices=("count", "checksum"))
RETRIES: Option[int] = _number("retries", int, 1, 0, 10,
                               "Retries of a table after a lost connection", "N")
LOCK_TIMEOUT: Option[float] = _number(
    "lock_timeout", float, 2.0, 0.001, 3600,
    "Seconds one swap try may wait for its locks, the longest a reader is held up (capped at "
    "0.8 x the server's deadlock_timeout)", "S")
LOCK_ATTEMPTS: Option[int] = _number("lock_attempts", int, 6, 1, 100,
                                     "Tries for the swap lock, with exponential backoff", "N")
# Issue 14: which tables flip together (docs/swap.md). `linked` keeps every view over copied
# tables showing one night; `group` flips the whole invocation at once (disk for every staged
# table at the same time); `table` swaps each table alone (views may join two nights).
SWAP_SCOPE: Option[str] = Option(
    "swap_scope", str, "linked",
    "Tables swapped in one transaction: linked (those a target view reads together, "
    "so a view never shows two nights), group (all tables at once; needs disk for all staged "
    "tables), table (each alone)", "[table|linked|group]", EVERYWHERE,
    choices=("table", "linked", "group"))
CANCEL_BLOCKERS_AFTER: Option[float | None] = _number(
    "cancel_blockers_after", float, None, 0.1, 86400,
    "After this many seconds of failed lock tries, cancel the other sessions' queries that "
    "block the swap (pg_cancel_backend; named in a warning); off unless set", "S")
# Trust is a worker option like the tuning ones (issue 12): the same night must trust the same
# code in every worker, and a per-run --trust lets one night try a function before the config
# says so. Its grammar is checked by the engine (nightcopy.engine.trust), like --tables'.
TRUST: Option[str | None] = Option(
    "trust", str, None,
    "Functions (schema.name) or schemas (schema.*), comma-separated, that CHECKs, generated "
    "columns, index and partition expressions may call besides built-in immutable functions "
    "and extensions' (they run on the target as the target role)", "LIST", EVERYWHERE)
# What a table needs and the target lacks (schema fidelity): its extensions are created on the
# target (CREATE EXTENSION, as the worker: trusted extensions) unless this is off, when the
# table fails naming the CREATE EXTENSION an administrator must run.
CREATE_EXTENSIONS: Option[bool] = Option(
    "create_extensions", bool, True,
    "Create the extensions a table needs and the target lacks (trusted extensions, as the "
    "target role); --no-create-extensions fails such a table naming the CREATE EXTENSION to "
    "run", "BOOL", EVERYWHERE)

# Adopt (issue 12): a glob replaces only the target tables nightcopy created (the ledger's
# managed_tables); for a team moving from another tool, whose tables nightcopy never created,
# this lets globs replace existing ones (and records them as nightcopy's from then on).
ADOPT: Option[bool] = Option(
    "adopt", bool, False,
    "Let globs in the table list replace existing target tables nightcopy did not create (and "
    "record them as nightcopy's); without it such a table fails unless it is named explicitly",
    "BOOL", EVERYWHERE)

# The shrink guard (issue 17, engine/shrink_guard.py): on by default, because a night that
# propagates a source accident (a table truncated by mistake) destroys last night's good copy.
ShrinkThreshold = float | str  # a percentage, or "off"
SHRINK_GUARD: Option[ShrinkThreshold] = Option(
    "shrink_guard", float, 50.0,
    "Refuse to replace a table when more than PCT % of the reporting copy's rows would go (it "
    "keeps last night's copy and fails); off: never refuse", "PCT|off", EVERYWHERE,
    low=0, high=100, off_word=True)
SHRINK_GUARD_MIN_ROWS: Option[int] = _number(
    "shrink_guard_min_rows", int, 1000, 0, None,
    "The shrink guard never refuses a table whose reporting copy holds fewer rows", "N")
ALLOW_SHRINK: Option[str | None] = Option(
    "allow_shrink", str, None,
    "Tables (the --tables grammar) the shrink guard lets shrink tonight, after a deliberate "
    "purge", "TABLES", EVERYWHERE)

# Issue 17: a column added on the source whose name looks personal is named in the schema-drift
# report so someone decides (exclude_columns or mask in the table list, or copy it knowingly).
SENSITIVE_COLUMN_PATTERNS: Option[str] = Option(
    "sensitive_column_patterns", str, "*email*,*ssn*,*password*,*phone*,*iban*",
    "Globs (comma-separated, case-insensitive) of column names that the schema-drift report "
    "flags when such a column is added on the source, unless excluded or masked", "GLOBS",
    EVERYWHERE)

# Where the connections' passwords come from (aws/rds_iam.py): libpq's own (the DSN, .pgpass,
# PGPASSWORD) or an RDS IAM authentication token made from the worker's AWS credentials.
SOURCE_AUTH: Option[str] = Option(
    "source_auth", str, "libpq",
    "The source connections' password: libpq (the DSN, .pgpass, PGPASSWORD) or rds-iam (an RDS "
    "IAM authentication token from the worker's AWS credentials, made for each connection)",
    "[libpq|rds-iam]", EVERYWHERE, choices=("libpq", "rds-iam"))
TARGET_AUTH: Option[str] = Option(
    "target_auth", str, "libpq",
    "The target connections' password: libpq or rds-iam (as --source-auth)", "[libpq|rds-iam]",
    EVERYWHERE, choices=("libpq", "rds-iam"))

# --- `nightcopy run` itself (valid in the configs; workers ignore it) ---
PARALLEL: Option[int | None] = _number(
    "parallel", int, None, 1, None, "Groups run at once", "N",
    places=frozenset({Place.RUN, Place.CONFIG, Place.SSM}))

REGISTRY: tuple[Option[Any], ...] = (
    TABLES, SCHEMA, EXCLUDE_TABLE, GROUP, SOURCE_DSN, TARGET_DSN, MASK_KEY, CONFIG, SSM_PREFIX,
    RUN_ID,
    JOBS, STRATEGY, VERIFY, REPORT_URI, RETRIES, LOCK_TIMEOUT, LOCK_ATTEMPTS, SWAP_SCOPE, CANCEL_BLOCKERS_AFTER, TRUST,
    ADOPT, CREATE_EXTENSIONS, SHRINK_GUARD, SHRINK_GUARD_MIN_ROWS, ALLOW_SHRINK, SENSITIVE_COLUMN_PATTERNS, SOURCE_AUTH,
    TARGET_AUTH, PARALLEL)
BY_NAME: dict[str, Option[Any]] = {o.name: o for o in REGISTRY}
WORKER_OPTIONS: tuple[Option[Any], ...] = tuple(o for o in REGISTRY if o.worker)


def settable_in(place: Place) -> tuple[Option[Any], ...]:
    return tuple(o for o in REGISTRY if place in o.places)


def _shown(value: object) -> str:
    """A config value as the user wrote it (JSON and TOML agree on numbers, strings, true)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_options(values: object, origin: str, place: Place) -> dict[str, Any]:
    """The options of a config file's [options] or of SSM PREFIX/options, checked and converted.

    One message format for every origin: `<origin>: option X must be ...`. Unknown keys are
    errors (a typo must not fall back to a default silently); identity options are refused,
    naming where they belong.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{origin}: options must be a table/object of option = value")
    allowed = {o.name for o in settable_in(place)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        option = BY_NAME.get(key)
        if option is None:
            raise ConfigError(f"{origin}: unknown option {key!r} (known: "
                              f"{', '.join(sorted(allowed))})")
        if key not in allowed:
            # The value is never shown: it may be a DSN.
            raise ConfigError(f"{origin}: option {key} cannot be set in options: "
                              f"{option.belongs}")
        try:
            out[key] = option.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{origin}: option {key} {exc}, not {_shown(value)}") from None
    return out


def resolve(layers: Iterable[Mapping[str, Any]], options: Iterable[Option[Any]]
            ) -> dict[str, Any]:
    """Each option's value from the first layer that sets it (highest precedence first), else
    its default."""
    stack = list(layers)
    out: dict[str, Any] = {}
    for option in options:
        out[option.name] = next((layer[option.name] for layer in stack
                                 if layer.get(option.name) is not None), option.default)
    return out


def markdown_table() -> str:
    """The table of options in README.md (a test keeps the README equal to it)."""
    lines = ["| option | `copy` flag / variable | `run` flag | `[options]`, SSM `options` | "
             "value | default |", "|---|---|---|---|---|---|"]
    for o in REGISTRY:
        copy = f"`{o.flag}` / `{o.envvar}`" if Place.COPY in o.places else "-"
        run = f"`{o.flag}`" if Place.RUN in o.places else "-"
        if o.worker:
            configs = "yes"
        elif Place.CONFIG in o.places:
            configs = "yes (`run` only; workers ignore it)"
        else:
            configs = "no (refused)"
        default = {"parallel": "all groups", "run_id": "a new unique id"}.get(
            o.name, "-" if o.default is None else o.default_text())
        value = f"`{o.metavar}`" if o.kind is str and not o.choices else o.describe()
        lines.append(f"| `{o.name}` | {copy} | {run} | {configs} | {value} | {default} |")
    return "\n".join(lines) + "\n"
