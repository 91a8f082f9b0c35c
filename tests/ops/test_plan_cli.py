"""`nightcopy plan` on real catalogs and ledgers; --write-ssm against moto."""

from __future__ import annotations

import json

import pytest

from nightcopy.engine.ledger import ensure_ledger

# five tables of different sizes (rows of ~1 kB), one only reachable by a glob
SOURCE = """
CREATE SCHEMA sales;
CREATE TABLE public.a (id int, pad text);
CREATE TABLE public.b (id int, pad text);
CREATE TABLE public.c (id int, pad text);
CREATE TABLE public.d (id int, pad text);
CREATE TABLE public.e (id int, pad text);
CREATE TABLE sales.big (id int, pad text);
INSERT INTO sales.big SELECT i, repeat('x', 1000) FROM generate_series(1, 4000) i;
INSERT INTO public.e SELECT i, repeat('x', 1000) FROM generate_series(1, 100) i;
"""
MEASURED = {"public.a": [40, 44], "public.b": [30], "public.c": [20, 20, 20], "public.d": [10]}
GROUPS = [{"name": "first", "tables": ["public.a", "public.b", "public.c", "public.d"]},
          {"name": "second", "tables": ["public.e", "sales.*"]}]


@pytest.fixture
def measured(dbs):
    dbs.source.execute(SOURCE)
    conn = dbs.target.connect()
    conn.autocommit = False
    ensure_ledger(conn)
    with conn.cursor() as cur:
        for table, runs in MEASURED.items():
            for i, seconds in enumerate(runs):
                cur.execute("""INSERT INTO nightcopy.table_results
                                   (run_id, table_name, group_name, status, seconds, finished_at)
                               VALUES (%s, %s, 'first', 'copied', %s, now() - %s * interval '1 day')""",
                            (f"nightly-{i}", table, seconds, i))
        # a failed attempt never counts as a measurement
        cur.execute("""INSERT INTO nightcopy.table_results (run_id, table_name, status, seconds)
                       VALUES ('nightly-x', 'public.d', 'failed', 999)""")
    conn.commit()
    conn.close()
    return dbs


def test_plan_json_balances_and_estimates_untimed_tables_by_size(nc, measured, tmp_path,
                                                                 write_config):
    cfg = write_config(tmp_path / "n.toml", measured.source.dsn, measured.target.dsn, GROUPS)
    r = nc("plan", "--config", str(cfg), "--groups", "2", "--json", "--jobs", "1")
    assert r.exit_code == 0, r.text
    plan = json.loads(r.stdout)
    costs = {t["table"]: t for t in plan["tables"]}
    assert costs["public.a"]["seconds"] == pytest.approx(42)  # average of its two nights
    assert costs["public.d"]["seconds"] == pytest.approx(10)  # the failed 999 s is ignored
    assert costs["sales.big"]["measured_runs"] == 0 and costs["sales.big"]["seconds"] > 0
    assert costs["public.e"]["seconds"] < costs["sales.big"]["seconds"]
    proposed = [t for g in plan["table_groups"] for t in g["tables"]]
    assert sorted(proposed) == sorted(costs)  # every table once, globs expanded
    assert plan["current_makespan_seconds"] == pytest.approx(102)  # first: 42+30+20+10
    assert plan["proposed_makespan_seconds"] < plan["current_makespan_seconds"]
    assert plan["proposed_makespan_seconds"] >= plan["lower_bound_seconds"]


def test_plan_table_shows_both_makespans_and_a_toml_snippet(nc, measured, tmp_path,
                                                            write_config, with_password):
    cfg = write_config(tmp_path / "n.toml", with_password(measured.source.dsn),
                       with_password(measured.target.dsn), GROUPS)
    r = nc("plan", "--config", str(cfg), "--groups", "3")
    assert r.exit_code == 0, r.text
    # the worker's default --jobs 2, biggest first: a+d | b+c = 52 s today
    assert "Estimated makespan: today 52.0s, proposed" in r.stdout
    assert "each worker copies 2 tables at once" in r.stdout
    assert "[[groups]]" in r.stdout and 'name = "g3"' in r.stdout
    assert "globs in group(s) second were expanded" in r.stdout
    assert "s3cr3t-pw" not in r.text


def test_write_ssm_updates_table_groups_and_prints_the_old_value(nc, measured, ssm):
    old = json.dumps(GROUPS)
    ssm.put_parameter(Name="/nc/prod/source_dsn", Value=measured.source.dsn, Type="SecureString")
    ssm.put_parameter(Name="/nc/prod/target_dsn", Value=measured.target.dsn, Type="SecureString")
    ssm.put_parameter(Name="/nc/prod/table_groups", Value=old, Type="String")
    r = nc("plan", "--ssm-prefix", "/nc/prod", "--groups", "2", "--write-ssm")
    assert r.exit_code == 0, r.text
    assert "Wrote /nc/prod/table_groups" in r.stdout
    assert old in r.stdout  # so the change can be undone
    new = json.loads(ssm.get_parameter(Name="/nc/prod/table_groups")["Parameter"]["Value"])
    assert [g["name"] for g in new] == ["g1", "g2"]
    assert sorted(t for g in new for t in g["tables"]) == [
        "public.a", "public.b", "public.c", "public.d", "public.e", "sales.big"]
    # the new value is a valid config for the next night
    r = nc("plan", "--ssm-prefix", "/nc/prod", "--groups", "2", "--json")
    assert r.exit_code == 0, r.text
    again = json.loads(r.stdout)
    assert again["current_makespan_seconds"] == pytest.approx(again["proposed_makespan_seconds"])


def test_write_ssm_needs_a_prefix(nc, tmp_path):
    r = nc("plan", "--config", str(tmp_path / "x.toml"), "--groups", "2", "--write-ssm")
    assert r.exit_code == 2 and "--ssm-prefix" in r.stderr


def test_write_table_groups_keeps_type_and_moves_to_advanced_beyond_4kb(ssm):
    from nightcopy.ops.plan import write_table_groups

    ssm.put_parameter(Name="/nc/big/table_groups", Value="[]", Type="SecureString")
    big = json.dumps([{"name": "g1", "tables": [f"public.table_{i:04d}" for i in range(300)]}])
    assert len(big) > 4096
    name, old = write_table_groups("/nc/big/", big, client=ssm)
    assert (name, old) == ("/nc/big/table_groups", "[]")
    param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert param["Type"] == "SecureString" and param["Value"] == big
    described = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"][0]
    assert described["Tier"] == "Advanced"


def test_plan_prices_tables_on_work_time_not_lock_waits(nc, measured, tmp_path, write_config):
    # public.d's only copy took 10 s, 9 of them waiting for a reader's lock: it is a 1 s table
    measured.target.execute("UPDATE nightcopy.table_results SET lock_wait_seconds = 9 "
                            "WHERE table_name = 'public.d' AND status = 'copied'")
    cfg = write_config(tmp_path / "n.toml", measured.source.dsn, measured.target.dsn, GROUPS)
    r = nc("plan", "--config", str(cfg), "--groups", "2", "--json", "--jobs", "1")
    assert r.exit_code == 0, r.text
    costs = {t["table"]: t for t in json.loads(r.stdout)["tables"]}
    assert costs["public.d"]["seconds"] == pytest.approx(1)
    assert costs["public.a"]["seconds"] == pytest.approx(42)  # no waits: unchanged


def _group_of(plan: dict) -> dict[str, str]:
    return {t: g["name"] for g in plan["table_groups"] for t in g["tables"]}


def test_plan_keeps_tables_linked_by_a_foreign_key_or_a_target_view_together(
        nc, measured, tmp_path, write_config):
    """LPT over 4 groups puts a, b, c and d (42, 30, 20, 10 s) apart; a foreign key b -> a on the source, and a
    target view joining c and d, keep each pair in one group unless --allow-split."""
    measured.source.execute("ALTER TABLE public.a ADD PRIMARY KEY (id); "
                            "ALTER TABLE public.b ADD FOREIGN KEY (id) REFERENCES public.a")
    measured.target.execute("CREATE TABLE public.c (id int); CREATE TABLE public.d (id int); "
                            "CREATE VIEW public.cd AS SELECT * FROM public.c JOIN public.d "
                            "USING (id)")
    cfg = write_config(tmp_path / "n.toml", measured.source.dsn, measured.target.dsn, GROUPS)
    split = json.loads(nc("plan", "--config", str(cfg), "--groups", "4", "--json", "--jobs",
                          "1", "--allow-split").stdout)
    where = _group_of(split)
    assert where["public.a"] != where["public.b"] and where["public.c"] != where["public.d"]
    warned = " ".join(split["warnings"])
    assert "--allow-split: the proposal splits 2 link(s)" in warned
    assert "public.b - public.a (foreign key)" in warned and "(view public.cd)" in warned, warned
    assert {(frozenset((link["a"], link["b"])), link["via"])
            for link in split["split_links"]} == {
        (frozenset(("public.a", "public.b")), "foreign key"),
        (frozenset(("public.c", "public.d")), "view public.cd")}
    # today's groups keep both pairs together: nothing split today
    assert split["today_split_links"] == []
    kept = json.loads(nc("plan", "--config", str(cfg), "--groups", "4", "--json", "--jobs",
                         "1").stdout)
    where = _group_of(kept)
    assert where["public.a"] == where["public.b"] and where["public.c"] == where["public.d"]
    assert any("kept together (2 set(s)" in w and "splitting 2 link(s)" in w
               for w in kept["warnings"]), kept["warnings"]
    assert kept["split_links"] == []
    assert sorted(where) == sorted(_group_of(split))  # every table, once
