"""pg_dump's table selection (-t, -T/--exclude-table, -n/--schema) and `copy --dry-run`, which
lists what a night would copy and writes nothing anywhere (issue 16)."""

from __future__ import annotations

import json

import pytest


def _env(dbs) -> dict[str, str]:
    return {"NIGHTCOPY_SOURCE_DSN": dbs.source.dsn, "NIGHTCOPY_TARGET_DSN": dbs.target.dsn}


def _shop(dbs) -> None:
    dbs.source.execute("""
        CREATE SCHEMA sales; CREATE SCHEMA scratch;
        CREATE TABLE public.customers (id int PRIMARY KEY);
        CREATE TABLE public.tmp_import (id int);
        CREATE TABLE sales.orders (id int PRIMARY KEY, customer int);
        CREATE TABLE sales.tmp_orders (id int);
        CREATE TABLE scratch.notes (id int);
        INSERT INTO public.customers SELECT generate_series(1, 50);
        INSERT INTO sales.orders SELECT g, g % 50 + 1 FROM generate_series(1, 200) g;
        ANALYZE""")


def _two_groups(dbs, tmp_path, public: str, sales: str):
    """A nightcopy.toml: group `public` copies public.*, group `sales` sales.*, and the
    options exclude *.tmp_* from both."""
    config = tmp_path / "nightcopy.toml"
    config.write_text(f"""
source_dsn = {json.dumps(dbs.source.dsn)}
target_dsn = {json.dumps(dbs.target.dsn)}
[options]
exclude_table = "*.tmp_*"
[[groups]]
name = "{public}"
tables = ["public.*"]
[[groups]]
name = "{sales}"
tables = ["sales.*"]
""")
    return config


def _target_tables(dbs) -> list[str]:
    return [r[0] for r in dbs.target.query(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname "
        "NOT IN ('pg_catalog', 'information_schema', 'nightcopy') ORDER BY 1")]


def test_exclude_table_wins_over_globs_and_names(cli, dbs):
    _shop(dbs)
    result = cli(["copy", "-t", "*.*", "-T", "*.tmp_*, scratch.*", "--run-id", "r1"],
                 env=_env(dbs))
    assert result.returncode == 0, result.stderr
    assert _target_tables(dbs) == ["public.customers", "sales.orders"]
    # As pg_dump's -T over -t: an excluded table named explicitly is left out too.
    named = cli(["copy", "-t", "public.customers, public.tmp_import",
                 "--exclude-table", "public.tmp_import"], env=_env(dbs))
    assert [e["table"] for e in named.events_of("table_copied")] == ["public.customers"]


def test_exclude_table_from_the_config_file_reaches_every_group(cli, dbs, tmp_path):
    _shop(dbs)
    config = _two_groups(dbs, tmp_path, "a", "b")
    result = cli(["run", "--config", str(config), "--json"])
    assert result.returncode == 0, result.stderr
    assert _target_tables(dbs) == ["public.customers", "sales.orders"]


def test_an_exclusion_that_leaves_nothing_is_one_line(cli, dbs):
    _shop(dbs)
    result = cli(["copy", "-t", "sales.*", "-T", "sales.*"], env=_env(dbs))
    assert result.returncode == 1
    assert "every table of the list is excluded by exclude_table" in result.stderr
    assert "Traceback" not in result.stderr
    assert _target_tables(dbs) == []


def test_schema_selects_every_table_of_the_schema(cli, dbs):
    _shop(dbs)
    result = cli(["copy", "-n", "sales", "-t", "public.customers", "-T", "sales.tmp_orders"],
                 env=_env(dbs))
    assert result.returncode == 0, result.stderr
    assert _target_tables(dbs) == ["public.customers", "sales.orders"]


@pytest.mark.parametrize("bad", ["sales.orders", "a,,b"])
def test_schema_refuses_what_is_not_a_schema_name(cli, dbs, bad):
    result = cli(["copy", "--schema", bad], env=_env(dbs))
    assert result.returncode == 1
    assert "--schema" in result.stderr and "Traceback" not in result.stderr


def _target_state(dbs) -> list:
    return dbs.target.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', "
        "'pg_toast') ORDER BY 1, 2")


def test_dry_run_lists_the_plan_and_writes_nothing(cli, dbs, tmp_path):
    _shop(dbs)
    # A target table a glob matches but nightcopy did not create: the night would refuse it.
    dbs.target.execute("CREATE SCHEMA sales; CREATE TABLE sales.orders (id int)")
    before = _target_state(dbs)
    result = cli(["copy", "--dry-run", "-t", "public.customers, sales.*", "-T", "*.tmp_*",
                  "--report-uri", (tmp_path / "reports").as_uri()], env=_env(dbs))
    assert result.returncode == 1, result.stderr  # sales.orders would be refused
    planned = {e["table"]: e for e in result.events_of("table_planned")}
    assert list(planned) == ["public.customers", "sales.orders"], result.stderr
    assert planned["public.customers"]["action"] == "copy"
    assert planned["public.customers"]["rows_estimate"] == 50
    assert planned["public.customers"]["size_bytes"] > 0
    assert planned["sales.orders"]["action"] == "fail"
    assert "nightcopy did not create it" in planned["sales.orders"]["reason"]
    summary = result.events_of("dry_run_summary")[0]
    assert (summary["copy"], summary["fail"], summary["failed_tables"]) == (
        1, 1, ["sales.orders"])
    assert not result.events_of("run_started") and not result.events_of("table_copied")
    # Nothing anywhere: no ledger schema, no staged table, the target exactly as it was, no
    # report file.
    assert _target_state(dbs) == before
    assert not (tmp_path / "reports").exists()


def test_dry_run_shows_resumed_tables_and_swap_units(cli, dbs):
    _shop(dbs)
    env = _env(dbs)
    first = cli(["copy", "-t", "public.customers", "--run-id", "night1"], env=env)
    assert first.returncode == 0, first.stderr
    dbs.target.execute("CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY, "
                       "customer int)")
    dbs.target.execute("CREATE VIEW public.report AS SELECT o.id FROM sales.orders o JOIN "
                       "public.customers c ON c.id = o.customer")
    plan = cli(["copy", "--dry-run", "-t", "public.customers, sales.orders", "--run-id",
                "night1"], env=env)
    assert plan.returncode == 0, plan.stderr
    planned = {e["table"]: e for e in plan.events_of("table_planned")}
    assert planned["public.customers"]["action"] == "skip"
    assert planned["sales.orders"]["action"] == "copy"
    again = cli(["copy", "--dry-run", "-t", "public.customers, sales.orders"], env=env)
    planned = {e["table"]: e for e in again.events_of("table_planned")}
    # The view reads both: they flip in one transaction (--swap-scope linked).
    assert planned["sales.orders"]["swapped_with"] == ["public.customers"]
    assert planned["public.customers"]["swapped_with"] == ["sales.orders"]


def test_run_dry_run_lists_every_group_and_writes_nothing(cli, dbs, tmp_path):
    _shop(dbs)
    config = _two_groups(dbs, tmp_path, "people", "sales")
    before = _target_state(dbs)
    shown = cli(["run", "--config", str(config), "--dry-run"], env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("people" in line and "public.customers" in line and "copy" in line
               for line in lines), shown.stdout
    assert not any("tmp_" in line for line in lines)
    assert "2 table(s) to copy" in shown.stdout
    as_json = cli(["run", "--config", str(config), "--dry-run", "--json"])
    doc = json.loads(as_json.stdout)
    assert doc["dry_run"] is True and doc["ok"] is True
    assert [[t["table"] for t in g["tables"]] for g in doc["groups"]] == [
        ["public.customers"], ["sales.orders"]]
    assert _target_state(dbs) == before  # no ledger, nothing staged
    refused = cli(["run", "--config", str(config), "--dry-run", "--slack"])
    assert refused.returncode == 2 and "--dry-run" in refused.stderr


def test_a_partitioned_table_is_sized_by_its_partitions(cli, dbs):
    """Its own relation is empty (0 B): the size shown, and the worker's largest-first order,
    are its partitions'."""
    dbs.source.execute("""
        CREATE TABLE public.events (id int, at date) PARTITION BY RANGE (at);
        CREATE TABLE public.events_2026 PARTITION OF public.events
            FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO public.events SELECT g, '2026-06-01' FROM generate_series(1, 20000) g;
        CREATE TABLE public.small (id int); INSERT INTO public.small VALUES (1);
        ANALYZE""")
    plan = cli(["copy", "--dry-run", "-t", "public.*"], env=_env(dbs))
    planned = {e["table"]: e for e in plan.events_of("table_planned")}
    assert planned["public.events"]["kind"] == "partitioned table"
    assert planned["public.events"]["size_bytes"] > 500_000
    assert planned["public.events"]["rows_estimate"] == 20000
    copied = cli(["copy", "-t", "public.*", "-j", "1"], env=_env(dbs))
    assert [e["table"] for e in copied.events_of("table_started")] == [
        "public.events", "public.small"]
