"""Where the operator commands get their configuration: a local nightcopy.toml or an SSM prefix.

Both end up as one `RunConfig`, so `run`, `plan` and `validate` do not care where it came from.
The file format (documented in docs/operating.md):

    source_dsn = "env:NIGHTCOPY_SOURCE_DSN"      # literal libpq DSN or env:VAR
    target_dsn = "postgresql://report@db2/reporting"

    [options]                                     # all optional: every option of
    jobs = 2                                      # nightcopy.options settable here (the
    strategy = "swap"                             # worker's jobs, strategy, verify, retries,
    lock_timeout = 2                              # lock_timeout, lock_attempts; `run`'s
    parallel = 2                                  # parallel), checked by check_options

    [slack]                                       # optional; values literal or env:VAR
    webhook_url = "env:SLACK_WEBHOOK_URL"         # or bot_token + channel

    [[groups]]
    name = "orders"
    tables = ["public.orders", 'public."Order Items"', "sales.*"]

`table_groups = [...]` (the SSM parameter's JSON shape) may stand instead of [[groups]].
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightcopy.errors import ConfigError
from nightcopy.options import Place, check_options

DEFAULT_CONFIG_FILE = "nightcopy.toml"

_TOP_LEVEL_KEYS = {"source_dsn", "target_dsn", "mask_key", "options", "slack", "groups", "table_groups"}
_SLACK_KEYS = {"webhook_url", "bot_token", "channel"}


@dataclass
class RunConfig:
    """Everything the operator commands need; secrets stay in here and are never printed."""

    source_dsn: str
    target_dsn: str
    groups: list[Any]  # list[nightcopy.engine.table_groups.TableGroup]
    options: dict[str, Any] = field(default_factory=dict)
    mask_key: str | None = None  # "hmac" column masks' key (engine/column_masks); a secret
    slack_webhook_url: str | None = None
    slack_bot_token: str | None = None
    slack_channel: str | None = None
    origin: str = ""  # "file nightcopy.toml" or "SSM /nightcopy/prod/" for messages
    ssm_prefix: str | None = None

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_webhook_url or (self.slack_bot_token and self.slack_channel))


def resolve_value(value: Any, what: str, *, environ: dict[str, str] | None = None) -> str:
    """A literal string, or `env:VAR` read from the environment (ConfigError if unset)."""
    env = os.environ if environ is None else environ
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty string (a literal or env:VAR)")
    if value.startswith("env:"):
        var = value[4:].strip()
        if not var:
            raise ConfigError(f"{what}: 'env:' needs a variable name, e.g. env:NIGHTCOPY_SOURCE_DSN")
        resolved = env.get(var)
        if not resolved:
            raise ConfigError(f"{what} refers to environment variable {var}, which is not set")
        return resolved
    return value


def _groups_from_file(data: dict, origin: str, check_names: bool) -> list[Any]:
    if "groups" in data and "table_groups" in data:
        raise ConfigError(f"{origin}: give either [[groups]] or table_groups, not both")
    if "table_groups" in data:
        raw = data["table_groups"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{origin}: table_groups must be a non-empty array")
        # the SSM shape: a list of lists is named g1, g2, ...
        items = [{"name": f"g{i}", "tables": g} if isinstance(g, list) else g
                 for i, g in enumerate(raw, 1)]
    else:
        raw = data.get("groups")
        if not raw:
            raise ConfigError(f"{origin}: no groups: add [[groups]] sections with name and tables")
        if not isinstance(raw, list) or not all(isinstance(g, dict) for g in raw):
            raise ConfigError(f"{origin}: groups must be [[groups]] sections with name and tables")
        items = []
        for i, group in enumerate(raw, 1):
            unknown = set(group) - {"name", "tables"}
            if unknown:
                raise ConfigError(
                    f"{origin}: group #{i}: unknown key(s) {', '.join(sorted(unknown))}")
            if not isinstance(group.get("tables"), list):
                # A TOML array keeps quoting simple: one SQL name or glob per string.
                raise ConfigError(
                    f"{origin}: group #{i}: tables must be an array of names, e.g. "
                    '["public.orders", "sales.*"]'
                )
            items.append({"name": group.get("name"), "tables": group["tables"]})
    return _parse_groups_one_by_one(items, origin, check_names)


def _parse_groups_one_by_one(items: list, origin: str, check_names: bool) -> list[Any]:
    """Each group's own list is checked here; a table in two groups is left to the commands
    (run refuses it, validate lists every such table with the others' problems), which see
    globs expanded too. Names that do not fit are refused all at once (one line naming each)."""
    from nightcopy.engine.table_groups import check_group_names, parse_table_groups
    from nightcopy.ops.group_expansion import duplicate_group_names

    groups = []
    for item in items:
        try:
            groups += parse_table_groups([item], check_names=False)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    if check_names:
        try:
            check_group_names(groups)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    dupes = duplicate_group_names(groups)
    if dupes:
        raise ConfigError(f"{origin}: group name(s) {', '.join(dupes)} used more than once; "
                          "give each group its own name")
    return groups


def load_file(path: str | Path, *, environ: dict[str, str] | None = None,
              check_group_names: bool = True, require_dsns: bool = True) -> RunConfig:
    """The config file as a RunConfig. check_group_names=False keeps groups whose names do not
    fit [A-Za-z0-9_-]{1,80} (only `nightcopy validate`, which names each of them).
    require_dsns=False (the worker's `copy --config`, whose DSNs may come from its flags or
    NIGHTCOPY_*_DSN): a DSN the file leaves out is ''."""
    p = Path(path)
    origin = f"config file {p}"
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{origin} not found: create it (see docs/operating.md) or pass --ssm-prefix"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from None
    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("source_dsn", "target_dsn"):
        if key not in data and require_dsns:
            raise ConfigError(f"{origin}: {key} is missing (a libpq DSN or env:VAR)")
    slack = data.get("slack", {})
    if not isinstance(slack, dict) or set(slack) - _SLACK_KEYS:
        raise ConfigError(f"{origin}: [slack] takes only webhook_url, bot_token and channel")
    return RunConfig(
        source_dsn=(resolve_value(data["source_dsn"], "source_dsn", environ=environ)
                    if "source_dsn" in data else ""),
        target_dsn=(resolve_value(data["target_dsn"], "target_dsn", environ=environ)
                    if "target_dsn" in data else ""),
        groups=_groups_from_file(data, origin, check_group_names),
        options=check_options(data.get("options", {}), origin, Place.CONFIG),
        mask_key=(resolve_value(data["mask_key"], "mask_key", environ=environ)
                  if "mask_key" in data else None),
        slack_webhook_url=_optional(slack, "webhook_url", environ),
        slack_bot_token=_optional(slack, "bot_token", environ),
        slack_channel=_optional(slack, "channel", environ),
        origin=origin,
    )


def _optional(section: dict, key: str, environ: dict[str, str] | None) -> str | None:
    if key not in section:
        return None
    return resolve_value(section[key], f"slack.{key}", environ=environ)


def load_ssm(prefix: str, *, client=None) -> RunConfig:
    from nightcopy.aws.ssm import load_config

    cfg = load_config(prefix, client=client)
    if not cfg.table_groups:
        raise ConfigError(f"SSM {prefix}: table_groups is missing or empty")
    return RunConfig(
        # load_config() refused a prefix without them (its `required`)
        source_dsn=cfg.source_dsn or "",
        target_dsn=cfg.target_dsn or "",
        groups=list(cfg.table_groups),
        options=dict(cfg.options),  # checked by load_config, as every worker checks them
        mask_key=cfg.mask_key,
        slack_webhook_url=cfg.slack_webhook_url,
        slack_bot_token=cfg.slack_bot_token,
        slack_channel=cfg.slack_channel,
        origin=f"SSM {prefix}",
        ssm_prefix=prefix,
    )


def load(config_path: str | None, ssm_prefix: str | None, *, ssm_client=None,
         check_group_names: bool = True) -> RunConfig:
    """The config the operator asked for: --ssm-prefix, else --config (default ./nightcopy.toml).

    check_group_names=False (validate) applies to the file only: SSM table_groups is parsed by
    the same reader as every worker's, which refuses unfit names in one line naming each."""
    if ssm_prefix and config_path:
        raise ConfigError("give either --ssm-prefix or --config, not both")
    if ssm_prefix:
        return load_ssm(ssm_prefix, client=ssm_client)
    return load_file(config_path or DEFAULT_CONFIG_FILE, check_group_names=check_group_names)
