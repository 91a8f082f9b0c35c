"""`nightcopy validate` runs the worker's expression trust check (issue 12): each table whose
definition calls a function the trust option does not allow gets its own problem line, with
the reason the copy would print; exit 1. Trusted functions and built-ins pass."""

from __future__ import annotations

import pytest

SHOP = """
CREATE SCHEMA app;
CREATE FUNCTION app.ok(n integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE TABLE app.orders (id int PRIMARY KEY CHECK (app.ok(id)));
CREATE TABLE app.events (id int, at timestamptz CHECK (at < now()));
CREATE TABLE app.plain (id int PRIMARY KEY CHECK (id > 0));
"""


@pytest.fixture
def shop(dbs):
    dbs.source.execute(SHOP)
    # The trusted function must exist on the target too (the copy checks that as well).
    dbs.target.execute("CREATE SCHEMA app; CREATE FUNCTION app.ok(n integer) RETURNS boolean "
                       "LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;")
    return dbs


def _problems(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("problem: ")]


def test_validate_names_each_table_calling_an_untrusted_function(nc, shop, tmp_path,
                                                                 write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["app.*"]}], slack={})
    r = nc("validate", "--config", str(cfg), "--no-slack")
    assert r.exit_code == 1, r.text
    problems = _problems(r.stdout)
    assert len(problems) == 2, r.stdout
    orders, events = (next(p for p in problems if t in p) for t in ("app.orders", "app.events"))
    # The copy's own reason, naming the definition, the function and the trust item.
    assert "group a: app.orders would fail: the constraint orders_id_check of app.orders " \
           "calls the function app.ok(integer)" in orders
    assert "--trust (NIGHTCOPY_TRUST, options.trust) app.ok" in orders
    assert "pg_catalog.now()" in events
    assert not any("app.plain" in p for p in problems)


def test_validate_accepts_what_the_trust_option_allows(nc, shop, tmp_path, write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["app.*"]}],
                       options={"trust": "app.ok, pg_catalog.now"})
    r = nc("validate", "--config", str(cfg), "--no-slack")
    assert r.exit_code == 0, r.text
    assert _problems(r.stdout) == []


def test_validate_prints_the_line_the_copy_prints(nc, cli, shop, tmp_path, write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["app.orders"]}])
    r = nc("validate", "--config", str(cfg), "--no-slack")
    copy = cli(["copy", "--source", shop.source.dsn, "--target", shop.target.dsn,
                "--tables", "app.orders"])
    reason = copy.events_of("table_failed")[0]["error"]
    assert _problems(r.stdout) == [f"problem: group a: app.orders would fail: {reason}"]


def test_validate_names_a_table_a_glob_would_refuse_to_replace(nc, shop, tmp_path, write_config):
    """A target table that a glob matches and that nightcopy did not create: the worker would
    refuse it, so validate says so (not for a table named explicitly, nor with adopt)."""
    shop.target.execute("CREATE TABLE app.plain (note text)")
    groups = [{"name": "a", "tables": ["app.p*"]}]
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn, groups)
    r = nc("validate", "--config", str(cfg), "--no-slack")
    assert r.exit_code == 1, r.text
    [problem] = _problems(r.stdout)
    assert problem.startswith("problem: group a: app.plain would fail: not replacing app.plain "
                              "on the target: it is matched only by the glob 'app.p*'"), problem
    assert "--adopt" in problem
    adopted = write_config(tmp_path / "adopt.toml", shop.source.dsn, shop.target.dsn, groups,
                           options={"adopt": True})
    assert nc("validate", "--config", str(adopted), "--no-slack").exit_code == 0
    named = write_config(tmp_path / "named.toml", shop.source.dsn, shop.target.dsn,
                         [{"name": "a", "tables": ["app.plain"]}])
    assert nc("validate", "--config", str(named), "--no-slack").exit_code == 0


def test_validate_takes_tables_nightcopy_copied_as_its_own(nc, cli, shop, tmp_path, write_config):
    copy = cli(["copy", "--source", shop.source.dsn, "--target", shop.target.dsn,
                "--tables", "app.plain"])
    assert copy.returncode == 0, copy.stderr
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["app.p*"]}])
    r = nc("validate", "--config", str(cfg), "--no-slack")
    assert r.exit_code == 0, r.text
