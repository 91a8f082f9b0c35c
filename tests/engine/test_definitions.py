"""Table definitions on the target: the edge corpus, enums (inheritance: test_inheritance)."""

from __future__ import annotations

from tests.pgutil import digests, schema_of, user_tables


def test_edge_corpus_is_copied_faithfully(copy, corpus, dbs):
    dbs.source.execute(corpus)
    result = copy("*.*", "--verify", "checksum", "--jobs", "3")
    assert result.returncode == 0, result.stderr
    tables = user_tables(dbs.source.dsn)
    assert user_tables(dbs.target.dsn) == tables
    # Same rows (every value's text form), same definitions (pg_dump of both sides).
    assert digests(dbs.target.dsn, tables) == digests(dbs.source.dsn, tables)
    # Triggers run application logic (and need its functions): they are not copied.
    source_schema = "\n".join(line for line in schema_of(dbs.source.dsn, tables).splitlines()
                              if not line.startswith("CREATE TRIGGER"))
    assert schema_of(dbs.target.dsn, tables) == source_schema
    assert dbs.target.scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == 0
    copied = {e["table"] for e in result.events_of("table_copied")}
    # A partitioned table is one event; its partitions come with it.
    assert "archive.measurements" in copied and "archive.measurements_eu_2024" not in copied
    assert '"Sales Dept"."Order Items"' in copied and 'public."ünïcode_tåble"' in copied
    summary = result.events_of("run_summary")[0]
    assert summary["status"] == "succeeded" and summary["failed"] == 0
    assert summary["tables"] == len(copied) == 13
    # Sequences end at or past the source's value, identity included.
    for seq in ("public.shared_seq", "public.kitchen_sink_serial_col_seq",
                "public.kitchen_sink_id_seq"):
        src = dbs.source.scalar(f"SELECT last_value FROM {seq}")
        tgt = dbs.target.scalar(f"SELECT last_value FROM {seq}")
        assert tgt >= src, seq
    assert dbs.target.scalar("SELECT nextval('public.kitchen_sink_serial_col_seq')") > \
        dbs.source.scalar("SELECT max(serial_col) FROM public.kitchen_sink")
    # Foreign keys between copied tables are kept and validated.
    assert dbs.target.scalar("SELECT convalidated FROM pg_constraint WHERE conname = "
                             "'child_payments_account_id_fkey'") is True
    # Binary where portable, text where the binary form carries OIDs.
    formats = {e["table"]: e["format"] for e in result.events_of("table_copied")}
    assert formats["public.kitchen_sink"] == "text"
    assert formats['"Sales Dept"."Order Items"'] == "binary"
    # Nothing is left behind in the staging schemas.
    assert dbs.target.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname LIKE 'nightcopy_stage_%'") == 0


def test_enum_values_added_on_the_source_reach_the_target(copy, dbs):
    dbs.source.execute("CREATE TYPE public.status AS ENUM ('new', 'paid');"
                       "CREATE TABLE public.o (id int, s public.status);"
                       "INSERT INTO public.o VALUES (1, 'new'), (2, 'paid')")
    assert copy("public.o").returncode == 0
    dbs.source.execute("ALTER TYPE public.status ADD VALUE 'refunded' BEFORE 'paid'")
    dbs.source.execute("INSERT INTO public.o VALUES (3, 'refunded')")
    result = copy("public.o")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT enumlabel FROM pg_enum WHERE enumtypid = "
                            "'public.status'::regtype ORDER BY enumsortorder") == \
        [("new",), ("refunded",), ("paid",)]
    assert dbs.target.query("SELECT id FROM public.o ORDER BY s, id") == [(1,), (3,), (2,)]
