"""`nightcopy validate`: every problem of a config on a line of its own, exit 1; OK exit 0."""

from __future__ import annotations

import json

import pytest

SHOP = """
CREATE SCHEMA sales;
CREATE TABLE public.customers (id int PRIMARY KEY);
CREATE TABLE public.orders (id int PRIMARY KEY);
CREATE TABLE public."Order Items" (id int);
CREATE TABLE sales.invoices (id int);
CREATE TABLE sales.credits (id int);
CREATE VIEW public.order_view AS SELECT * FROM public.orders;
"""


@pytest.fixture
def shop(dbs):
    dbs.source.execute(SHOP)
    return dbs


def test_a_good_config_passes(nc, shop, tmp_path, write_config, with_password):
    cfg = write_config(tmp_path / "nightcopy.toml", with_password(shop.source.dsn),
                       with_password(shop.target.dsn),
                       [{"name": "a", "tables": ["public.orders", 'public."Order Items"']},
                        {"name": "b", "tables": ["public.customers", "sales.*"]}],
                       slack={"webhook_url": "https://hooks.slack.com/services/T0/B0/xyzsecret"})
    r = nc("validate", "--config", str(cfg))
    assert r.exit_code == 0, r.text
    assert "OK" in r.stdout and "2 groups, 5 tables found on the source" in r.stdout
    assert "s3cr3t-pw" not in r.text and "xyzsecret" not in r.text


def test_every_problem_gets_its_own_line(nc, shop, tmp_path, write_config, with_password):
    cfg = write_config(
        tmp_path / "nightcopy.toml", with_password(shop.source.dsn),
        "host=/nonexistent-socket-dir dbname=reporting user=x password=s3cr3t-pw",
        [{"name": "a", "tables": ["public.orders", "public.missing", "public.order_view"]},
         {"name": "b", "tables": ["public.orders", "nosuch.*", "sales.*"]},
         {"name": "c", "tables": ["sales.invoices"]}])
    r = nc("validate", "--config", str(cfg))
    assert r.exit_code == 1
    problems = [line for line in r.stdout.splitlines() if line.startswith("problem: ")]
    text = "\n".join(problems)
    assert len(problems) == 6, r.stdout
    assert "target DSN: cannot reach the target database" in text
    assert "public.missing does not exist on the source" in text
    assert "public.order_view is a view on the source" in text
    assert "'nosuch.*' matches no table" in text
    assert "table public.orders is in more than one group: a, b" in text
    assert "table sales.invoices is in more than one group: b, c" in text
    # A config without [slack] is complete: `nightcopy run` posts to Slack only with --slack.
    assert "slack" not in text
    assert r.stderr.strip().endswith("6 problems")
    assert "s3cr3t-pw" not in r.text


def test_same_database_twice_and_slack_half_configured(nc, shop, tmp_path, write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.source.dsn,
                       [{"name": "a", "tables": ["public.orders"]}],
                       slack={"bot_token": "xoxb-123-secret"})
    r = nc("validate", "--config", str(cfg))
    assert r.exit_code == 1
    assert "source and target are the same database" in r.stdout
    assert "slack: [slack] channel is missing" in r.stdout  # named as the file names it
    assert "xoxb-123-secret" not in r.text


def test_an_unreadable_config_is_one_problem(nc, tmp_path):
    bad = tmp_path / "nightcopy.toml"
    bad.write_text('source_dsn = "x"\ntarget_dsn = "y"\n[[groups]]\nname = "a"\n'
                   'tables = ["public.t", "t"]\n')
    r = nc("validate", "--config", str(bad))
    assert r.exit_code == 1
    assert r.stdout.count("problem: ") == 1 and "listed twice" in r.stdout


def test_validate_an_ssm_prefix(nc, shop, ssm, with_password):
    put = ssm.put_parameter
    put(Name="/nc/prod/source_dsn", Value=with_password(shop.source.dsn), Type="SecureString")
    put(Name="/nc/prod/target_dsn", Value=with_password(shop.target.dsn), Type="SecureString")
    put(Name="/nc/prod/table_groups", Type="String",
        Value=json.dumps([["public.orders", "sales.*"], ["public.customers"]]))
    r = nc("validate", "--ssm-prefix", "/nc/prod", "--slack")
    assert r.exit_code == 1 and "slack: no Slack settings in SSM /nc/prod" in r.stdout
    assert "set /nc/prod/slack_webhook_url, or /nc/prod/slack_bot_token" in r.stdout
    assert r.stdout.count("problem: ") == 1
    put(Name="/nc/prod/slack_webhook_url", Type="SecureString",
        Value="https://hooks.slack.com/services/T0/B0/xyzsecret")
    r = nc("validate", "--ssm-prefix", "/nc/prod/", "--slack")
    assert r.exit_code == 0, r.text
    assert "SSM /nc/prod" in r.stdout and "2 groups, 4 tables" in r.stdout
    assert "s3cr3t-pw" not in r.text and "xyzsecret" not in r.text


def test_slack_is_required_only_when_asked_and_named_as_the_file_names_it(nc, shop, tmp_path,
                                                                          write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["public.orders"]}])
    r = nc("validate", "--config", str(cfg))
    assert r.exit_code == 0, r.text
    r = nc("validate", "--config", str(cfg), "--slack")
    assert r.exit_code == 1
    assert "set [slack] webhook_url, or [slack] bot_token and [slack] channel" in r.stdout
    assert "slack_webhook_url" not in r.stdout  # the SSM name means nothing in a file


def test_validate_json_lists_problems_and_checks(nc, shop, tmp_path, write_config):
    cfg = write_config(tmp_path / "nightcopy.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["public.orders", "public.missing"]}])
    r = nc("validate", "--config", str(cfg), "--json")
    assert r.exit_code == 1
    result = json.loads(r.stdout)
    assert result["ok"] is False and result["origin"] == f"config file {cfg}"
    assert len(result["problems"]) == 1 and "public.missing" in result["problems"][0]
    cfg = write_config(tmp_path / "good.toml", shop.source.dsn, shop.target.dsn,
                       [{"name": "a", "tables": ["public.orders"]}])
    r = nc("validate", "--config", str(cfg), "--json")
    assert r.exit_code == 0, r.text
    assert json.loads(r.stdout) == {"origin": f"config file {cfg}", "ok": True, "problems": [],
                                    "checked": json.loads(r.stdout)["checked"]}
    assert json.loads(r.stdout)["checked"]


def test_validate_checks_the_source_roles_privileges(nc, dbs, tmp_path, write_config):
    import os

    import psycopg2.extensions

    role = f"val_reader_{os.getpid()}"
    dbs.source.execute(f"""
        CREATE TABLE public.orders (id serial PRIMARY KEY);
        CREATE TABLE public.secret (id int);
        CREATE ROLE {role} LOGIN;
        GRANT USAGE ON SCHEMA public TO {role};
        GRANT SELECT ON public.orders TO {role};""")
    try:
        source = psycopg2.extensions.make_dsn(dbs.source.dsn, user=role)
        cfg = write_config(tmp_path / "a.toml", source, dbs.target.dsn,
                           [{"name": "a", "tables": ["public.secret"]}])
        r = nc("validate", "--config", str(cfg))
        assert r.exit_code == 1
        assert ("problem: source: the source role may not read public.secret: GRANT SELECT ON "
                "public.secret") in r.stdout
        cfg = write_config(tmp_path / "b.toml", source, dbs.target.dsn,
                           [{"name": "a", "tables": ["public.orders"]}])
        r = nc("validate", "--config", str(cfg))
        assert r.exit_code == 1
        assert "GRANT SELECT ON SEQUENCE public.orders_id_seq" in r.stdout
        dbs.source.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        r = nc("validate", "--config", str(cfg))
        assert r.exit_code == 0, r.text
        assert "the source role may read every table and sequence" in r.stdout
    finally:
        dbs.source.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_dsn_hints_name_where_the_value_came_from(nc, dbs, tmp_path, write_config):
    import psycopg2.extensions

    wrong_user = psycopg2.extensions.make_dsn(dbs.source.dsn, user="no_such_user_x")
    cfg = write_config(tmp_path / "nightcopy.toml", wrong_user, dbs.target.dsn,
                       [{"name": "a", "tables": ["public.t"]}])
    for command in (("validate",), ("run",), ("plan", "--groups", "1")):
        r = nc(*command, "--config", str(cfg))
        assert r.exit_code == 1, (command, r.text)
        assert f"check source_dsn in config file {cfg}" in r.text, (command, r.text)
        assert "NIGHTCOPY_SOURCE_DSN" not in r.text and "SSM" not in r.text, (command, r.text)


def test_validate_checks_excluded_and_masked_columns(nc, dbs, tmp_path):
    """What the worker refuses about excluded and masked columns is a validate problem too, one
    line per table entry: an unknown column, a partition key over an excluded column, "hmac"
    without a key; the same entries pass once fixed."""
    dbs.source.execute("""
        CREATE TABLE public.people (id int PRIMARY KEY, email text, phone text);
        CREATE TABLE public.events (id int, region text) PARTITION BY LIST (region);
        CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu');""")

    def config(people: str, events: str, key: str = "") -> str:
        path = tmp_path / "nightcopy.toml"
        path.write_text(f"""source_dsn = "{dbs.source.dsn}"
target_dsn = "{dbs.target.dsn}"
{key}
[[groups]]
name = "g1"
tables = [{{ table = "public.people", {people} }}, {{ table = "public.events", {events} }}]
""")
        return str(path)

    bad = config('exclude_columns = ["emial"]', 'exclude_columns = ["region"]')
    r = nc("validate", "--config", bad)
    assert r.exit_code == 1, r.text
    assert ("group g1: table list entry for public.people: exclude_columns names emial, not a "
            "column of the table") in r.stdout
    assert ("group g1: public.events: its partition key uses the excluded column region"
            in r.stdout)
    no_key = config('mask = { email = "hmac" }', 'mask = { region = "null" }')
    r = nc("validate", "--config", no_key)
    assert r.exit_code == 1 and 'a "hmac" mask needs the mask key' in r.stdout, r.text
    good = config('mask = { email = "hmac" }', 'exclude_columns = ["id"]',
                  key='mask_key = "a-key-of-at-least-16-chars"')
    r = nc("validate", "--config", good)
    assert r.exit_code == 0, r.text
    assert "every excluded and masked column can be left out as configured" in r.stdout
    assert "a-key-of-at-least-16-chars" not in r.text


def test_validate_checks_the_target_roles_rights_to_replace_the_tables(nc, dbs, tmp_path,
                                                                       write_config):
    """The swap drops the old table (truncate empties it): the target role must own it; and
    the new table moves into its schema: CREATE there."""
    import os

    import psycopg2.extensions

    loader, other = f"val_loader_{os.getpid()}", f"val_owner_{os.getpid()}"
    dbs.source.execute("CREATE SCHEMA sales; CREATE TABLE public.orders (id int); "
                       "CREATE TABLE sales.items (id int)")
    dbs.target.execute(f"""
        CREATE ROLE {loader} LOGIN; CREATE ROLE {other};
        GRANT CREATE ON DATABASE "{dbs.target.scalar('SELECT current_database()')}" TO {loader};
        GRANT CREATE, USAGE ON SCHEMA public TO {loader};
        CREATE TABLE public.orders (id int); ALTER TABLE public.orders OWNER TO {other};
        CREATE SCHEMA sales; GRANT USAGE ON SCHEMA sales TO {loader};""")
    try:
        target = psycopg2.extensions.make_dsn(dbs.target.dsn, user=loader)
        cfg = write_config(tmp_path / "a.toml", dbs.source.dsn, target,
                           [{"name": "a", "tables": ["public.orders", "sales.items"]}])
        r = nc("validate", "--config", str(cfg))
        assert r.exit_code == 1
        assert (f"problem: target: public.orders is owned by role {other}, which the target "
                f"role {loader} is not a member of") in r.stdout
        assert f"GRANT {other} TO {loader}" in r.stdout
        assert (f"problem: target: the target role {loader} may not create tables in schema "
                f"sales: GRANT CREATE ON SCHEMA sales TO {loader}") in r.stdout
        dbs.target.execute(f"GRANT {other} TO {loader}; GRANT CREATE ON SCHEMA sales TO {loader}")
        r = nc("validate", "--config", str(cfg))
        assert r.exit_code == 0, r.text
        assert "the target role may replace every table" in r.stdout
    finally:
        dbs.target.execute(f"DROP OWNED BY {loader}, {other}; DROP ROLE {loader}, {other}")
