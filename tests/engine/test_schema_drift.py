"""The schema-drift report (issue 17): each night says what changed in a table's source
definition since its last successful copy (event schema_changed, ledger table_definitions)."""

from __future__ import annotations

from nightcopy.engine.schema_drift import changes

SOURCE_SQL = """
CREATE TABLE public.orders (id int PRIMARY KEY, email text, total numeric, old_name int,
                            note text);
CREATE INDEX orders_total_idx ON public.orders (total);
INSERT INTO public.orders SELECT g, 'e' || g, g, g, 'n' FROM generate_series(1, 50) g;
"""


def test_an_added_and_a_dropped_column_and_a_changed_index_are_reported(copy, dbs):
    dbs.source.execute(SOURCE_SQL)
    first = copy("public.orders")
    assert first.returncode == 0, first.stderr
    assert first.events_of("schema_changed") == []  # nothing recorded before: nothing to say
    dbs.target.execute("CREATE VIEW public.order_emails AS SELECT id, email FROM public.orders")
    dbs.source.execute("""
        ALTER TABLE public.orders ADD COLUMN channel text, DROP COLUMN note;
        ALTER TABLE public.orders RENAME COLUMN old_name TO new_name;
        DROP INDEX public.orders_total_idx;
        CREATE INDEX orders_total_idx ON public.orders (total DESC)""")
    second = copy("public.orders")
    assert second.returncode == 0, second.stderr  # reported, also when the copy succeeds
    [event] = second.events_of("schema_changed")
    assert event["table"] == "public.orders"
    assert event["changes"] == [
        "column old_name renamed to new_name", "column channel added (text)",
        "column note dropped",
        "index orders_total_idx changed: btree (total DESC)"], event
    assert event["views"] == ["public.order_emails"]
    # The ledger holds each night's definition as copied; the third night reports nothing.
    recorded = dbs.target.query("SELECT run_id, definition->'columns' FROM "
                                "nightcopy.table_definitions ORDER BY recorded_at")
    assert len(recorded) == 2
    assert ["channel", "text", 6] in recorded[1][1] and ["note", "text", 5] in recorded[0][1]
    assert copy("public.orders").events_of("schema_changed") == []


def test_a_failed_copy_keeps_the_last_successful_definition(copy, dbs):
    """Recorded in the swap's transaction: a night that fails records nothing, so the next
    night still reports the change against the last copy that succeeded."""
    dbs.source.execute(SOURCE_SQL)
    assert copy("public.orders").returncode == 0
    dbs.source.execute("ALTER TABLE public.orders ADD COLUMN channel text")
    dbs.target.execute("CREATE RULE keep AS ON DELETE TO public.orders DO INSTEAD NOTHING")
    failed = copy("public.orders")
    assert failed.returncode == 1
    assert failed.events_of("schema_changed")[0]["changes"] == ["column channel added (text)"]
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.table_definitions") == 1


def test_changes_of_constraints_partitions_and_types():
    before = {"columns": [["id", "integer", 1], ["v", "text", 2]],
              "constraints": {"c_pos": "CHECK ((id > 0))", "old_key": "UNIQUE (v)"},
              "indexes": {}, "partitions": ["public.p_1", "public.p_2"]}
    after = {"columns": [["id", "bigint", 1], ["v", "text", 2]],
             "constraints": {"c_pos": "CHECK ((id > 1))", "new_fk": "FOREIGN KEY (id) ..."},
             "indexes": {"v_idx": "btree (v)"}, "partitions": ["public.p_2", "public.p_3"]}
    assert changes(before, after) == [
        "column id retyped integer -> bigint", "constraint new_fk added",
        "constraint old_key dropped", "constraint c_pos changed: CHECK ((id > 1))",
        "index v_idx added", "partition public.p_3 added", "partition public.p_1 dropped"]
    assert changes(after, after) == []


def test_the_report_file_and_the_slack_message_carry_the_changes(copy, dbs, tmp_path):
    import json

    from nightcopy_notifier.slack_message import build_report

    dbs.source.execute(SOURCE_SQL)
    assert copy("public.orders").returncode == 0
    dbs.target.execute("CREATE VIEW public.order_emails AS SELECT id, email FROM public.orders")
    dbs.source.execute("ALTER TABLE public.orders DROP COLUMN note, ADD COLUMN channel text")
    result = copy("public.orders", "--run-id", "night-2", "--group", "g1", "--report-uri",
                  tmp_path.as_uri())
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "night-2" / "g1.json").read_text())
    assert report["schema_changes"] == [{
        "table": "public.orders", "changes": ["column channel added (text)",
                                              "column note dropped"],
        "views": ["public.order_emails"]}]
    blocks = build_report([report], run_id="night-2")["blocks"]
    text = "\n".join(b["text"]["text"] for b in blocks if "text" in b)
    assert ("*Schema changes on the source*\n• `public.orders`: column channel added (text); "
            "column note dropped (may break view public.order_emails)") in text


def test_tables_new_or_gone_from_a_glob_are_reported(copy, dbs, tmp_path):
    """A glob matches what the source has tonight: a table created on the source joins the copy
    and one dropped there leaves it, both said (events and report file), compared with the
    group's last successful invocation; a named table, and a first night, report nothing."""
    import json

    dbs.source.execute("""
        CREATE SCHEMA sales;
        CREATE TABLE sales.invoices (id int PRIMARY KEY);
        CREATE TABLE sales.credits (id int PRIMARY KEY);
        CREATE TABLE public.named (id int PRIMARY KEY);""")
    first = copy("sales.*,public.named", "--run-id", "n1", "--group", "g1")
    assert first.returncode == 0, first.stderr
    assert first.events_of("schema_changed") == []
    dbs.source.execute("DROP TABLE sales.credits; CREATE TABLE sales.refunds (id int);")
    result = copy("sales.*,public.named", "--run-id", "n2", "--group", "g1", "--report-uri",
                  tmp_path.as_uri())
    assert result.returncode == 0, result.stderr
    said = {e["table"]: e["changes"] for e in result.events_of("schema_changed")}
    assert said == {
        "sales.refunds": ["table added: newly matched by sales.*"],
        "sales.credits": ["table gone: no longer matched by sales.* (the reporting copy keeps "
                          "its last rows)"]}
    report = json.loads((tmp_path / "n2" / "g1.json").read_text())
    assert [c["table"] for c in report["schema_changes"]] == ["sales.refunds", "sales.credits"]
    assert dbs.target.scalar("SELECT count(*) FROM sales.credits") == 0  # kept, not dropped
    other = copy("sales.*", "--run-id", "n3", "--group", "g2")  # another group: its own past
    assert other.returncode == 0 and other.events_of("schema_changed") == []
