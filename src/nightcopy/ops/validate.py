"""`nightcopy validate`: check a configuration without copying anything.

Collects every problem instead of stopping at the first, so one run tells the operator all that
must be fixed: one line per problem, naming the group, table or setting.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from nightcopy.errors import NightcopyError


@dataclass
class Report:
    origin: str
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what passed, for the closing line

    @property
    def ok(self) -> bool:
        return not self.problems


def _connect(dsn: str | None, role: str, report: Report, app: str = "nightcopy validate"):
    from nightcopy.engine.connection import connect, redact_dsn

    if not dsn:
        report.problems.append(f"{role} DSN: not set")
        return None
    try:
        conn = connect(dsn, role, app)
    except NightcopyError as exc:
        report.problems.append(f"{role} DSN: {exc}")
        return None
    report.checked.append(f"{role} {redact_dsn(dsn)} reachable")
    return conn


def _check_trust(source, target, config, expanded, report: Report) -> None:
    """The expression trust check the worker runs before it writes anything (issue 12): each
    table whose definition calls what the trust option does not allow, on a line of its own
    with the reason the copy would print. Reads both catalogs, writes nothing."""
    import psycopg2

    from nightcopy.engine.failure_messages import pg_message
    from nightcopy.engine.source_catalog.definitions import load_definitions
    from nightcopy.engine.source_catalog.listed_tables import resolve_tables
    from nightcopy.engine.tablelist import parse_name
    from nightcopy.engine.trust import parse_trust, refused_tables, untrusted_reason

    try:
        trust = parse_trust(config.options.get("trust"))
    except NightcopyError as exc:
        report.problems.append(f"options: {exc}")
        return
    try:
        group_of = {t: e.name for e in expanded for t in e.tables}
        tables = resolve_tables(source, [parse_name(t) for t in group_of])
        defs = load_definitions(source, tables)
        source.rollback()
        if target is not None:
            refused = refused_tables(target, defs, trust)
        else:  # the source's side of the check, without the target's lookups
            refused = {oid: reason for oid, d in defs.items()
                       if (reason := untrusted_reason(d, trust)) is not None}
    except psycopg2.Error as exc:
        source.rollback()
        report.problems.append(f"cannot check the tables' expressions: {pg_message(exc)}")
        return
    except NightcopyError as exc:
        report.problems.append(str(exc))
        return
    for oid, reason in sorted(refused.items(), key=lambda item: defs[item[0]].ref.qualified):
        table = defs[oid].ref.qualified
        report.problems.append(f"group {group_of[table]}: {table} would fail: {reason}")
    if not refused:
        report.checked.append("no table's expressions call untrusted functions")


def validate_config(config, *, check_slack: bool = True) -> Report:
    from nightcopy.engine.table_groups import unfit_group_names, unfit_names_message
    from nightcopy.engine.tablelist import parse_table_list
    from nightcopy.ops.group_expansion import ExpandedGroup, expand_group, overlaps

    report = Report(config.origin)
    for name in unfit_group_names(config.groups):
        # One line per group (validate's rule); run and every worker refuse such a config.
        report.problems.append(f"group {name}: {unfit_names_message([name])}; run and copy "
                               "refuse it")
    marker = f"nightcopy validate {secrets.token_hex(6)}"
    source = _connect(config.source_dsn, "source", report, marker)
    target = _connect(config.target_dsn, "target", report)
    try:
        if target is not None:
            with target.cursor() as cur:
                if source is not None:
                    # The source session's unique application_name showing up in the target's
                    # own database means both DSNs lead to the same database.
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                                " AND datname = current_database()", (marker,))
                    if cur.fetchone()[0]:
                        report.problems.append("source and target are the same database: the "
                                               "worker refuses to copy a database onto itself")
                cur.execute("SELECT has_database_privilege(current_database(), 'CREATE')")
                if not cur.fetchone()[0]:
                    report.problems.append(
                        "target: the user may not create schemas in this database (the worker "
                        "needs CREATE for the ledger and staging schemas)")
            target.rollback()
        expanded = []
        for group in config.groups:
            try:
                specs = parse_table_list(list(group.tables))
            except NightcopyError as exc:
                report.problems.append(f"group {group.name}: {exc}")
                continue
            if source is None:
                continue
            # Item by item, so every unknown table gets its own line (resolving the whole list
            # stops at the first); the good items still count for the overlap check below.
            found: list[str] = []
            for spec in specs:
                try:
                    found += expand_group(source, group.name, [spec.text]).tables
                except NightcopyError as exc:
                    report.problems.append(str(exc))
            expanded.append(ExpandedGroup(group.name, list(group.tables),
                                          list(dict.fromkeys(found)), False))
        if source is not None and expanded:
            _check_trust(source, target, config, expanded, report)
        for table, names in sorted(overlaps(expanded).items()):
            report.problems.append(f"table {table} is in more than one group: {', '.join(names)}")
        if expanded:
            n = sum(len(e.tables) for e in expanded)
            report.checked.append(f"{len(expanded)} groups, {n} tables found on the source")
    finally:
        for conn in (source, target):
            if conn is not None:
                conn.close()
    if check_slack:
        if config.slack_webhook_url:
            if not config.slack_webhook_url.startswith("https://"):
                report.problems.append("slack: the webhook URL must start with https://")
            else:
                report.checked.append("Slack webhook set")
        elif config.slack_bot_token or config.slack_channel:
            if not (config.slack_bot_token and config.slack_channel):
                missing = "slack_channel" if config.slack_bot_token else "slack_bot_token"
                report.problems.append(f"slack: {missing} is missing (a bot token needs a channel)")
            else:
                report.checked.append("Slack bot token and channel set")
        else:
            report.problems.append(
                "slack: no Slack settings: set slack_webhook_url, or slack_bot_token and "
                "slack_channel (or pass --no-slack if this config does not report to Slack)")
    return report
