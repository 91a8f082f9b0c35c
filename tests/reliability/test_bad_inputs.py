"""Bad inputs, table-driven (issue 7): each one gets a short clear error naming the problem and
the fix, exit 1 (2 for command-line usage), no traceback, no secret, and the target unchanged:
every relation's oid, kind, ACL, file node and content checksum before == after (the ledger
schema aside).

Every DSN carries a recognisable password (rel_tools.SECRET_PW); SSM cases also hold a Slack
webhook URL and bot token: none of them may show up in stdout, stderr or the ledger.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2.extensions
import pytest
import rel_world
from rel_tools import (
    MARK,
    SECRET_HOOK,
    SECRET_PW,
    SECRET_TOKEN,
    PwServer,
    SimpleDb,
    check_output,
    create_db,
    drop_db,
    free_port,
    ledger_text,
    relation_state,
    ssm_cli_args,
    stderr_is_short,
    with_password,
    worker_env,
)


@dataclass
class Ctx:
    src: str  # source DSN, with the secret password
    tgt: str
    source_db: object
    target_db: object
    pw: PwServer
    tmp: Path
    _pw_db: str = ""

    @property
    def pw_db(self) -> str:
        """A database on the password server (made on first use: only a few cases need it)."""
        if not self._pw_db:
            self._pw_db = self.pw.create_database(
                f"pw_{self.tmp.name[-20:].lower()}".replace("-", "_"))
        return self._pw_db


@dataclass
class Case:
    id: str
    tables: str | None  # --tables value (None: not passed)
    code: int
    patterns: list[str]  # regexes stderr must match (case-insensitive)
    extra: Callable[[Ctx], list[str]] = lambda c: []
    source: Callable[[Ctx], str] | None = None  # replaces the source DSN
    target: Callable[[Ctx], str] | None = None
    setup: Callable[[Ctx], None] | None = None
    ssm: Callable[[Ctx], dict] | None = None  # SSM parameters (moto, in the worker process)
    xfail: str | None = None
    fresh: bool = False  # needs databases of its own (it changes them, or needs no ledger yet)
    absent: list[str] = field(default_factory=list)  # regexes stderr must not match
    marks: list = field(default_factory=list)


def _dsn(base: str, **kw: str) -> str:
    return psycopg2.extensions.make_dsn(base, **kw)


PREFIX = "/nightcopy/test"


def _ssm(groups: object | None = None, *, source: bool = True, target: bool = True,
         options: str | None = None, raw_groups: str | None = None) -> Callable[[Ctx], dict]:
    def make(c: Ctx) -> dict:
        params: dict[str, list[str]] = {
            f"{PREFIX}/slack_webhook_url": ["SecureString", SECRET_HOOK],
            f"{PREFIX}/slack_bot_token": ["SecureString", SECRET_TOKEN],
        }
        if source:
            params[f"{PREFIX}/source_dsn"] = ["SecureString", c.src]
        if target:
            params[f"{PREFIX}/target_dsn"] = ["SecureString", c.tgt]
        if raw_groups is not None:
            params[f"{PREFIX}/table_groups"] = ["String", raw_groups]
        elif groups is not None:
            params[f"{PREFIX}/table_groups"] = ["String", json.dumps(groups)]
        if options is not None:
            params[f"{PREFIX}/options"] = ["String", options]
        return {"parameters": params}
    return make


def _deny(how: str) -> Callable[[Ctx], dict]:
    """how: "aws" answers GetParameters exactly as AWS does for a role without the permission
    (HTTP 400, AccessDeniedException); "iam": moto's own IAM enforcement (a user without any
    policy)."""
    def make(c: Ctx) -> dict:
        spec = _ssm([{"name": "g1", "tables": ["public.orders"]}])(c)
        spec["deny"] = how
        return spec
    return make


def _sql_on(which: str, sql: str) -> Callable[[Ctx], None]:
    def run(c: Ctx) -> None:
        (c.source_db if which == "source" else c.target_db).execute(sql)
    return run


GROUPS_OK = [{"name": "g1", "tables": ["public.orders"]},
             {"name": "g2", "tables": ["public.customers"]}]

CASES: list[Case] = [
    # ---- the table list (--tables)
    Case("tables-empty", "", 1, [r"table list is empty"]),
    Case("tables-trailing-comma", "public.orders,", 1, [r"empty item"]),
    Case("tables-malformed-json", '["public.orders",', 1, [r"not valid JSON", r"JSON array"]),
    Case("tables-json-numbers", "[1, 2]", 1, [r"must be strings"]),
    Case("tables-json-objects", '[{"name": "public.orders"}]', 1, [r'has no "table" name']),
    Case("unknown-table", "public.nosuch", 1, [r"public\.nosuch does not exist on the source"]),
    Case("glob-matches-nothing", "nosuchschema.*", 1, [r"matches no table"]),
    Case("same-table-twice", "orders, public.orders", 1, [r"listed twice"]),
    Case("three-part-name", "db.public.orders", 1, [r"database names are not allowed"]),
    Case("view-named", "public.orders_v", 1, [r"is a view on the source", r"tables only"]),
    Case("partition-named", "public.events_2025", 1,
         [r"partition of public\.events", r"list the partitioned table"]),
    # ---- SQL injection attempts in names: refused or looked up literally, never executed
    Case("injection-unquoted", "public.orders; DROP TABLE public.unlisted", 1,
         [r"is not a table name"]),
    Case("injection-quoted", '"orders""; DROP TABLE public.unlisted; --"', 1,
         [r"does not exist on the source"]),
    Case("injection-schema", "\"public') OR 1=1 --\".orders", 1,
         [r"does not exist on the source"]),
    Case("injection-json", '["public.orders\\"; DELETE FROM public.unlisted; --"]', 1,
         [r"not a table name|unbalanced"]),
    # ---- command line usage (exit 2: the parser rejects it)
    Case("usage-jobs-zero", "public.orders", 2, [r"--jobs"], extra=lambda c: ["--jobs", "0"]),
    Case("usage-strategy", "public.orders", 2, [r"--strategy"],
         extra=lambda c: ["--strategy", "merge"]),
    Case("usage-unknown-option", "public.orders", 2, [r"no such option"],
         extra=lambda c: ["--frobnicate"]),
    Case("usage-lock-timeout-negative", "public.orders", 2, [r"--lock-timeout"],
         extra=lambda c: ["--lock-timeout", "-1"]),
    Case("no-target", "public.orders", 1, [r"no target database", r"--target"],
         target=lambda c: ""),
    Case("run-id-too-long", "public.orders", 1, [r"--run-id"],
         extra=lambda c: ["--run-id", "r" * 300]),
    Case("report-uri-bad-scheme", "public.orders", 1, [r"report-uri"],
         extra=lambda c: ["--report-uri", "ftp://reports.example/x"]),
    # ---- DSNs and connections
    Case("dsn-syntax", "public.orders", 1, [r"target DSN is not a valid libpq", r"postgresql://"],
         target=lambda c: f"host=localhost port password={SECRET_PW} dbname"),
    Case("dsn-uri-bad-port", "public.orders", 1, [r"target"],
         target=lambda c: f"postgresql://nc:{SECRET_PW}@127.0.0.1:notaport/db"),
    Case("wrong-password", "public.orders", 1,
         [r"cannot log in to the target", r"password or user is wrong", r"\*\*\*"],
         target=lambda c: c.pw.uri(c.pw_db, password=f"Wrong{MARK}pw")),
    Case("no-password-given", "public.orders", 1, [r"target", r"password"],
         target=lambda c: f"postgresql://nc_app@127.0.0.1:{c.pw.port}/{c.pw_db}"),
    Case("unreachable-port", "public.orders", 1,
         [r"cannot reach the source", r"no server answers", r"host and port"],
         source=lambda c: f"postgresql://nc:{SECRET_PW}@127.0.0.1:{free_port()}/db"),
    Case("database-missing", "public.orders", 1, [r"target", r"database does not exist"],
         target=lambda c: _dsn(c.tgt, dbname="no_such_db_nc")),
    Case("user-missing", "public.orders", 1, [r"source", r"user does not exist"],
         source=lambda c: _dsn(c.src, user="no_such_user_nc")),
    Case("source-role-without-select", "public.orders", 1,
         [r"source role may not read public\.orders", r"GRANT SELECT"],
         source=lambda c: _dsn(c.src, user="nc_nosel"), fresh=True),
    Case("target-role-without-create", "public.orders", 1, [r"target", r"CREATE"],
         target=lambda c: _dsn(c.tgt, user="nc_nocreate"), fresh=True),
    Case("source-equals-target", "public.orders", 1, [r"same database"],
         target=lambda c: c.src),
    # ---- incompatible objects on the target
    Case("target-matview-through-view", "public.orders", 1,
         [r"materialized view public\.orders_mv reads it through public\.orders_v",
          r"--strategy truncate"],
         setup=_sql_on("target", "CREATE VIEW public.orders_v AS SELECT * FROM public.orders; "
                                 "CREATE MATERIALIZED VIEW public.orders_mv AS "
                                 "SELECT count(*) FROM public.orders_v")),
    Case("target-rule", "public.orders", 1, [r"rule orders_rule", r"truncate"],
         setup=_sql_on("target", "CREATE RULE orders_rule AS ON DELETE TO public.orders "
                                 "DO INSTEAD NOTHING")),
    Case("target-unlisted-fk", "public.orders", 1,
         [r"foreign key unlisted_fk", r"public\.unlisted_child"],
         setup=_sql_on("target", "CREATE TABLE public.unlisted_child (oid bigint CONSTRAINT "
                                 "unlisted_fk REFERENCES public.orders(id))"),
         absent=[r"use --strategy truncate"]),
    Case("target-unlisted-fk-truncate", "public.orders", 1,
         [r"cannot truncate public\.orders", r"foreign key unlisted_fk"],
         extra=lambda c: ["--strategy", "truncate"],
         setup=_sql_on("target", "CREATE TABLE public.unlisted_child (oid bigint CONSTRAINT "
                                 "unlisted_fk REFERENCES public.orders(id))")),
    Case("target-object-is-view", '"Order Items"', 1, [r"is a view", r"drop or rename"],
         setup=_sql_on("target", 'CREATE VIEW public."Order Items" AS SELECT 1 AS id')),
    Case("truncate-columns-differ", "public.customers", 1, [r"columns differ", r"swap"],
         extra=lambda c: ["--strategy", "truncate"],
         setup=_sql_on("target", "ALTER TABLE public.customers ADD COLUMN extra int")),
    # ---- SSM configuration (moto SSM inside the worker process)
    Case("ssm-groups-malformed-json", None, 1, [r"table_groups is not valid JSON"],
         ssm=_ssm(raw_groups='[{"name": "g1", "tables": ["public.orders"]')),
    Case("ssm-groups-object", None, 1, [r"table_groups is empty or not a list"],
         ssm=_ssm({"g1": ["public.orders"]})),
    Case("ssm-groups-nested-lists", None, 1, [r"table names must be strings"],
         ssm=_ssm([[["public.orders"]]])),
    Case("ssm-groups-numbers", None, 1, [r"table_groups item 1 is int"], ssm=_ssm([1, 2])),
    Case("ssm-groups-empty", None, 1, [r"table_groups is empty"], ssm=_ssm([])),
    Case("ssm-group-without-tables", None, 1, [r"group 'g1' in table_groups has no tables"],
         ssm=_ssm([{"name": "g1", "tables": []}])),
    Case("ssm-group-duplicate-name", None, 1, [r"more than once"],
         ssm=_ssm([{"name": "g1", "tables": ["public.orders"]},
                   {"name": "g1", "tables": ["public.customers"]}])),
    Case("ssm-table-in-two-groups", None, 1, [r"public\.orders", r"more than one group|groups"],
         ssm=_ssm([{"name": "g1", "tables": ["public.orders"]},
                   {"name": "g2", "tables": ["public.customers", "public.orders"]}])),
    Case("ssm-group-unknown-table", None, 1, [r"does not exist on the source"],
         ssm=_ssm([{"name": "g1", "tables": ["public.nosuch"]}])),
    Case("ssm-unknown-group", None, 1, [r"'nosuch' is not in table_groups", r"g1, g2"],
         extra=lambda c: ["--group", "nosuch"], ssm=_ssm(GROUPS_OK)),
    Case("ssm-missing-source-dsn", None, 1,
         [rf"{PREFIX}/source_dsn does not exist", r"put-parameter"],
         ssm=_ssm(GROUPS_OK, source=False)),
    Case("ssm-missing-table-groups", None, 1, [rf"{PREFIX}/table_groups does not exist"],
         ssm=_ssm(None)),
    Case("ssm-access-denied", None, 1, [r"denied", r"ssm:GetParameters", r"kms:Decrypt"],
         ssm=_deny("aws")),
    Case("ssm-access-denied-moto-iam", None, 1, [r"denied", r"ssm:GetParameters"],
         ssm=_deny("iam")),
    Case("ssm-options-malformed", None, 1, [r"options is not valid JSON"],
         ssm=_ssm(GROUPS_OK, options="{jobs: 4")),
    Case("ssm-options-unknown", None, 1, [r"unknown option 'paralel'"],
         ssm=_ssm(GROUPS_OK, options='{"paralel": 4}')),
    Case("ssm-options-out-of-range", None, 1, [r"jobs must be a number from 1 to 64"],
         ssm=_ssm(GROUPS_OK, options='{"jobs": 0}')),
]


def _params() -> list:
    out = []
    for case in CASES:
        marks = list(case.marks)
        if case.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.fixture(scope="module")
def shared_world(pg_servers) -> Iterator[tuple[SimpleDb, SimpleDb]]:
    """One world for the cases that must not change anything (each still compares the target
    before and after itself); cases that set something up get fresh databases."""
    src_server, tgt_server = pg_servers
    name = f"relbad_{os.getpid()}"
    pair = (create_db(src_server.admin_dsn, f"src_{name}"),
            create_db(tgt_server.admin_dsn, f"tgt_{name}"))
    rel_world.build(pair[0].dsn, pair[1].dsn)
    yield pair
    drop_db(src_server.admin_dsn, f"src_{name}")
    drop_db(tgt_server.admin_dsn, f"tgt_{name}")


@pytest.fixture
def ctx(request, shared_world, pw_server, tmp_path) -> Ctx:
    case = getattr(request, "param", None) or request.node.callspec.params.get("case")
    if isinstance(case, Case) and not (case.fresh or case.setup):
        source, target = shared_world
    else:
        dbs = request.getfixturevalue("dbs")
        rel_world.build(dbs.source.dsn, dbs.target.dsn)
        source, target = dbs.source, dbs.target
    return Ctx(with_password(source.dsn), with_password(target.dsn), source, target,
               pw_server, tmp_path)


def run_case(case: Case, c: Ctx) -> tuple[int, str, str]:
    if case.setup:
        case.setup(c)
    source = case.source(c) if case.source else c.src
    target = case.target(c) if case.target else c.tgt
    args = ["copy", "--lock-timeout", "0.2", "--lock-attempts", "2"]
    if case.ssm is None:
        args += ["--source", source, "--target", target]
    else:
        args += ["--ssm-prefix", PREFIX]
        if "--group" not in case.extra(c):
            args += ["--group", "g1"]
    if case.tables is not None:
        args += ["--tables", case.tables]
    args += case.extra(c)
    if case.ssm is None:
        proc = subprocess.run([__import__("sys").executable, "-m", "nightcopy", *args],
                              capture_output=True, text=True, timeout=120, env=worker_env())
    else:
        proc = subprocess.run(ssm_cli_args(case.ssm(c), args), capture_output=True, text=True,
                              timeout=120, env=worker_env())
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, ctx: Ctx) -> None:
    if case.setup:
        case.setup(ctx)
        case = Case(**{**case.__dict__, "setup": None})
    # The ledger included: a bad input is refused before anything is written, the ledger too.
    before = relation_state(ctx.target_db.dsn, ledger=True)
    code, out, err = run_case(case, ctx)
    after = relation_state(ctx.target_db.dsn, ledger=True)
    if os.environ.get("NC_REL_RECORD"):  # docs/reliability.md quotes what users see
        with open(os.environ["NC_REL_RECORD"], "a") as f:
            f.write(json.dumps({"case": case.id, "code": code, "stderr": err}) + "\n")
    # what the user sees
    check_output(out, err, ledger_text(ctx.target_db.dsn))
    for line in out.splitlines():
        json.loads(line)  # stdout carries JSON lines only
    assert code == case.code, f"exit {code}\n{err}"
    for pattern in case.patterns:
        assert re.search(pattern, err, re.IGNORECASE), f"{pattern!r} not in:\n{err}"
    for pattern in case.absent:
        assert not re.search(pattern, err, re.IGNORECASE), f"{pattern!r} in:\n{err}"
    stderr_is_short(err, lines=8 if code == 2 else 4)
    # the target is exactly as it was; the ledger too, unless the input passed validation and a
    # table failed on the target (then the ledger records that failure, and nothing else moved)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    failed_tables = [json.loads(line)["table"] for line in out.splitlines()
                     if json.loads(line).get("event") == "table_failed"]
    if failed_tables:
        changed = {k for k in changed if k[0] != "nightcopy"}
        recorded = ctx.target_db.query("SELECT table_name FROM nightcopy.table_results "
                                       "WHERE status = 'failed'")
        assert set(failed_tables) <= {r[0] for r in recorded}, (failed_tables, recorded)
    assert not changed, f"target changed: {sorted(changed)}"


# Legitimate names that look odd: quoted, mixed case, spaces, commas, doubled quotes, unicode.
LEGIT_NAMES = [
    ('public."Order Items"', ['public."Order Items"']),
    ('"Ünïcødé ☃"', ['public."Ünïcødé ☃"']),
    ('public."we""ird, name"', ['public."we""ird, name"']),
    ('"Sales Dept"."Q1"', ['"Sales Dept"."Q1"']),
    ('"Sales Dept".*', ['"Sales Dept"."Q1"']),
    ('["public.\\"Order Items\\"", "public.\\"we\\"\\"ird, name\\""]',
     ['public."Order Items"', 'public."we""ird, name"']),
]


@pytest.mark.parametrize("tables,expected", LEGIT_NAMES, ids=[
    "space", "unicode", "quote-and-comma", "quoted-schema", "quoted-schema-glob", "json-array"])
def test_legitimate_odd_names_work(tables: str, expected: list[str], ctx: Ctx) -> None:
    proc = subprocess.run([__import__("sys").executable, "-m", "nightcopy", "copy", "--source",
                           ctx.src, "--target", ctx.tgt, "--tables", tables],
                          capture_output=True, text=True, timeout=120, env=worker_env())
    check_output(proc.stdout, proc.stderr, ledger_text(ctx.target_db.dsn))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(x) for x in proc.stdout.splitlines()]
    assert sorted(e["table"] for e in events if e["event"] == "table_copied") == sorted(expected)
    for name in expected:
        assert (ctx.source_db.query(f"SELECT * FROM {name} ORDER BY 1")
                == ctx.target_db.query(f"SELECT * FROM {name} ORDER BY 1"))
