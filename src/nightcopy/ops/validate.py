"""`nightcopy validate`: check a configuration without copying anything.

Collects every problem instead of stopping at the first, so one run tells the operator all that
must be fixed: one line per problem, naming the group, table or setting.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from nightcopy.aws.codebuild_quota import check_codebuild_quota
from nightcopy.errors import NightcopyError


@dataclass
class Report:
    origin: str
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what passed, for the closing line

    @property
    def ok(self) -> bool:
        return not self.problems


def _connect(dsn: str | None, role: str, report: Report, app: str = "nightcopy validate",
             config=None):
    from nightcopy.engine.connection import connect, redact_dsn
    from nightcopy.ops.dsn_origin import restated

    if not dsn:
        report.problems.append(f"{role} DSN: not set")
        return None
    try:
        conn = connect(dsn, role, app)
    except NightcopyError as exc:
        report.problems.append(f"{role} DSN: {restated(exc, config) if config else exc}")
        return None
    report.checked.append(f"{role} {redact_dsn(dsn)} reachable")
    return conn


def _check_definitions(source, target, config, expanded, report: Report) -> None:
    """What the worker refuses per table before it writes anything (issue 12), each table on a
    line of its own with the reason the copy would print: a definition calling what the trust
    option does not allow, and a table a glob matches that exists on the target and nightcopy
    did not create. Reads both catalogs, writes nothing."""
    import psycopg2

    from nightcopy.engine.failure_messages import pg_message
    from nightcopy.engine.source_catalog.definitions import load_definitions
    from nightcopy.engine.source_catalog.listed_tables import resolve_tables
    from nightcopy.engine.source_catalog.readable import check_readable
    from nightcopy.engine.tablelist import parse_name
    from nightcopy.engine.trust import parse_trust, refused_tables, untrusted_reason

    try:
        trust = parse_trust(config.options.get("trust"))
    except NightcopyError as exc:
        report.problems.append(f"options: {exc}")
        return
    group_of = {t: e for e in expanded for t in e.tables}
    refused: dict[str, str] = {}
    try:
        tables = resolve_tables(source, [parse_name(t) for t in group_of])
        defs = load_definitions(source, tables)  # refuses sequences the role may not read
        source.rollback()
        try:  # what the worker refuses before writing: tables (and partitions) it cannot read
            check_readable(source, defs)
            report.checked.append("the source role may read every table and sequence")
        except NightcopyError as exc:
            report.problems.append(f"source: {exc}")
        source.rollback()
        _check_masks(source, config, expanded, defs, report)
        if target is not None:
            by_oid = refused_tables(target, defs, trust)
            if not config.options.get("adopt"):
                refused.update(_unmanaged_glob_matches(target, group_of, tables))
            _check_target_rights(target, [t.qualified for t in tables], report)
        else:  # the source's side of the check, without the target's lookups
            by_oid = {oid: reason for oid, d in defs.items()
                      if (reason := untrusted_reason(d, trust)) is not None}
        refused.update({defs[oid].ref.qualified: reason for oid, reason in by_oid.items()})
    except psycopg2.Error as exc:
        source.rollback()
        report.problems.append(f"cannot check the tables' definitions: {pg_message(exc)}")
        return
    except NightcopyError as exc:
        report.problems.append(f"source: {exc}" if "source role" in str(exc) else str(exc))
        return
    for table, reason in sorted(refused.items()):
        report.problems.append(f"group {group_of[table].name}: {table} would fail: {reason}")
    if not refused:
        report.checked.append("no table's expressions call untrusted functions, and no glob "
                              "matches a target table nightcopy did not create")


def _check_masks(source, config, expanded, defs, report: Report) -> None:
    """What the worker refuses about excluded and masked columns (engine/column_masks), one
    line per table entry: an unknown column, one both excluded and masked, a masked generated
    column, a partition key or generated column over a left-out one, "hmac" without a key."""
    from nightcopy.engine import column_masks
    from nightcopy.engine.tablelist import parse_table_entries

    # A config from SSM keeps the key in SSM (PREFIX/mask_key), which the worker reads itself:
    # its presence is the worker's check there, so a stand-in key lets the rest be checked.
    key = config.mask_key if config.ssm_prefix is None else "validate-stand-in-key"
    entries = [(g.name, e) for g in expanded for e in parse_table_entries(list(g.items))]
    problems = 0
    for group, entry in entries:
        masks = column_masks.masks_of([entry])
        if not masks.by_table:
            continue
        try:
            refused = column_masks.resolve(source, masks, dict(defs), key)
        except NightcopyError as exc:
            refused = {0: str(exc)}
        finally:
            source.rollback()
        for reason in refused.values():
            problems += 1
            report.problems.append(f"group {group}: {reason}")
    if entries and not problems and any(column_masks.masks_of([e]).by_table
                                        for _g, e in entries):
        report.checked.append("every excluded and masked column can be left out as configured")


def _check_target_rights(target, names: list[str], report: Report) -> None:
    """What the worker needs on the target to replace the tables: to own (be a member of the
    owner of) each one that exists there, since the swap drops it and truncate empties it, and
    CREATE on each existing schema they go to (the swap moves the new table in)."""
    from nightcopy.engine.sql_names import quote_ident
    from nightcopy.engine.tablelist import parse_name

    with target.cursor() as cur:
        cur.execute("""
            SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname),
                   pg_catalog.pg_get_userbyid(c.relowner)
              FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND pg_catalog.format('%%I.%%I', n.nspname, c.relname) = ANY(%s)
               AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')
             ORDER BY 1""", (names,))
        not_owned = cur.fetchall()
        cur.execute("""
            SELECT n.nspname FROM pg_catalog.pg_namespace n
             WHERE n.nspname = ANY(%s)
               AND NOT pg_catalog.has_schema_privilege(n.oid, 'CREATE') ORDER BY 1""",
                    (sorted({parse_name(q).schema for q in names}),))
        no_create = [quote_ident(row[0]) for row in cur.fetchall()]
        cur.execute("SELECT current_user")
        me = quote_ident(cur.fetchone()[0])
    target.rollback()
    for table, owner_name in not_owned:
        owner = quote_ident(owner_name)
        report.problems.append(
            f"target: {table} is owned by role {owner}, which the target role {me} is not a "
            f"member of: the worker replaces the tables it copies; run ALTER TABLE {table} "
            f"OWNER TO {me} (or GRANT {owner} TO {me})")
    for schema in no_create:
        report.problems.append(
            f"target: the target role {me} may not create tables in schema {schema}: GRANT "
            f"CREATE ON SCHEMA {schema} TO {me}")
    if not not_owned and not no_create:
        report.checked.append("the target role may replace every table that exists on the "
                              "target, and create tables in their schemas")


def _unmanaged_glob_matches(target, group_of, tables) -> dict[str, str]:
    """The tables a group matches only through a glob that exist on the target and that the
    ledger does not record as nightcopy's (the worker refuses them without --adopt)."""
    from nightcopy.engine.table_guard import named, unmanaged_glob_match, unmanaged_on_target
    from nightcopy.engine.tablelist import parse_table_list

    unmanaged = unmanaged_on_target(target, tables)
    out: dict[str, str] = {}
    for t in tables:
        specs = parse_table_list(list(group_of[t.qualified].items))
        if t.qualified in unmanaged and not named(specs, t):
            out[t.qualified] = unmanaged_glob_match(specs, t)
    return out


def validate_config(config, *, check_slack: bool | None = None) -> Report:
    """Every problem of the configuration, each on one line.

    check_slack: True requires Slack settings (`validate --slack`: this config must report to
    Slack); None (the default) checks them only when the config has some, since a config that
    does not report to Slack (`nightcopy run` without --slack) is complete without them; False
    skips them."""
    from nightcopy.engine.source_catalog.listed_tables import excluded
    from nightcopy.engine.table_groups import unfit_group_names, unfit_names_message
    from nightcopy.engine.tablelist import parse_exclusions, parse_name, parse_table_list
    from nightcopy.ops.group_expansion import ExpandedGroup, expand_group, overlaps

    report = Report(config.origin)
    for name in unfit_group_names(config.groups):
        # One line per group (validate's rule); run and every worker refuse such a config.
        report.problems.append(f"group {name}: {unfit_names_message([name])}; run and copy "
                               "refuse it")
    marker = f"nightcopy validate {secrets.token_hex(6)}"
    source = _connect(config.source_dsn, "source", report, marker, config)
    target = _connect(config.target_dsn, "target", report, config=config)
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
        try:
            exclude = parse_exclusions(config.options.get("exclude_table"))
        except NightcopyError as exc:
            report.problems.append(f"options: {exc}")
            exclude = []
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
            kept = [q for q in dict.fromkeys(found)
                    if not excluded(exclude, (ref := parse_name(q)).schema, ref.name)]
            expanded.append(ExpandedGroup(group.name, list(group.tables), kept, False))
        if source is not None and expanded:
            _check_definitions(source, target, config, expanded, report)
        for table, names in sorted(overlaps(expanded).items()):
            report.problems.append(f"table {table} is in more than one group: {', '.join(names)}")
        if expanded:
            n = sum(len(e.tables) for e in expanded)
            report.checked.append(f"{len(expanded)} groups, {n} tables found on the source")
    finally:
        for conn in (source, target):
            if conn is not None:
                conn.close()
    has_slack = bool(config.slack_webhook_url or config.slack_bot_token or config.slack_channel)
    if check_slack or (check_slack is None and has_slack):
        _check_slack(config, report)
    check_codebuild_quota(config.ssm_prefix, report.problems, report.checked)  # issue 15
    return report


def _slack_keys(config) -> tuple[str, str, str]:
    """The names of the Slack settings where this config keeps them (SSM or the file)."""
    if getattr(config, "ssm_prefix", None):
        prefix = str(config.ssm_prefix).rstrip("/")
        return (f"{prefix}/slack_webhook_url", f"{prefix}/slack_bot_token",
                f"{prefix}/slack_channel")
    return ("[slack] webhook_url", "[slack] bot_token", "[slack] channel")


def _check_slack(config, report: Report) -> None:
    webhook, token, channel = _slack_keys(config)
    if config.slack_webhook_url:
        if not config.slack_webhook_url.startswith("https://"):
            report.problems.append(f"slack: {webhook} must start with https://")
        else:
            report.checked.append("Slack webhook set")
    elif config.slack_bot_token or config.slack_channel:
        if not (config.slack_bot_token and config.slack_channel):
            missing = channel if config.slack_bot_token else token
            report.problems.append(f"slack: {missing} is missing (a bot token needs a channel)")
        else:
            report.checked.append("Slack bot token and channel set")
    else:
        report.problems.append(
            f"slack: no Slack settings in {config.origin}: set {webhook}, or {token} and "
            f"{channel} (or leave out --slack if this config does not report to Slack)")
