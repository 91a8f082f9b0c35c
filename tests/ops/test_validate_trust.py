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
