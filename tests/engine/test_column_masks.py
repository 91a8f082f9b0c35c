"""Columns that must not leave the operational database (issue 17): exclude_columns and mask,
applied in the source query; the key never shown."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading

import psycopg2

KEY = "k3y-that-must-never-show-9f2c"
SOURCE_SQL = """
CREATE TABLE public.customers (id int PRIMARY KEY, email text NOT NULL UNIQUE, phone text,
                               secret text, note text);
CREATE INDEX customers_phone_idx ON public.customers (lower(phone));
INSERT INTO public.customers SELECT g, 'user' || g || '@x.org', '+41 ' || g, 's' || g, 'n'
  FROM generate_series(1, 3) g;
CREATE TABLE public.orders (id int PRIMARY KEY, email text, amount int);
INSERT INTO public.orders VALUES (1, 'user1@x.org', 10), (2, 'user3@x.org', 30);
"""
TABLES = json.dumps([
    {"table": "public.customers", "exclude_columns": ["secret"],
     "mask": {"email": "hmac", "phone": "null"}},
    {"table": "public.orders", "mask": {"email": "hmac"}}])


def _hex(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def test_excluded_and_masked_columns_never_reach_the_target(copy, dbs, tmp_path):
    dbs.source.execute(SOURCE_SQL)
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # every query text the source shows while the copy runs
        conn = psycopg2.connect(dbs.source.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT coalesce(query, '') FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid()")
                seen.extend(r[0] for r in cur.fetchall())
        conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = copy(TABLES, "--verify", "checksum", "--report-uri", tmp_path.as_uri(),
                      env={"NIGHTCOPY_MASK_KEY": KEY})
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    rows = dbs.target.query("SELECT id, email, phone, note FROM public.customers ORDER BY id")
    assert rows == [(i, _hex(f"user{i}@x.org"), None, "n") for i in (1, 2, 3)]
    cols = dbs.target.query("""
        SELECT attname, format_type(atttypid, atttypmod), attnotnull,
               col_description(attrelid, attnum)
          FROM pg_attribute WHERE attrelid = 'public.customers'::regclass AND attnum > 0
           AND NOT attisdropped ORDER BY attnum""")
    assert cols == [("id", "integer", True, None),
                    ("email", "text", True, "masked by nightcopy: hmac-sha256"),
                    ("phone", "text", False, "masked by nightcopy: null"),
                    ("note", "text", False, None)]  # secret: absent
    # The same key on two tables: the masked column still joins.
    joined = dbs.target.query("SELECT o.id, c.id FROM public.orders o JOIN public.customers c "
                              "USING (email) ORDER BY 1")
    assert joined == [(1, 1), (2, 3)]
    # The index on a masked column and the key on it are left out, and said so.
    indexes = dbs.target.query("SELECT indexrelid::regclass::text FROM pg_index "
                               "WHERE indrelid = 'public.customers'::regclass ORDER BY 1")
    assert indexes == [("customers_pkey",)]
    assert "index customers_phone_idx uses the masked column phone" in result.stderr
    assert "constraint customers_email_key uses the masked column email" in result.stderr
    # The key: nowhere in the source's query texts, stderr or the events.
    assert any("current_setting('nightcopy.mask_ipad')" in q for q in seen), "watcher saw no COPY"
    assert not any(KEY in q for q in seen)
    assert KEY not in result.stdout + result.stderr
    reports = [p.read_text() for p in tmp_path.rglob("*.json")]
    assert reports and not any(KEY in r for r in reports)
    assert not any("user1@x.org" in q for q in seen if "COPY" in q)


def test_unknown_columns_and_missing_key_fail_before_anything_is_copied(copy, dbs):
    dbs.source.execute("CREATE TABLE public.t (id int, email text)")
    unknown = copy(json.dumps([{"table": "public.t", "exclude_columns": ["emial"]}]))
    assert unknown.returncode == 1
    assert ("table list entry for public.t: exclude_columns names emial, not a column of the "
            "table (its columns: email, id)") in unknown.stderr
    assert "Traceback" not in unknown.stderr
    no_key = copy(json.dumps([{"table": "public.t", "mask": {"email": "hmac"}}]))
    assert no_key.returncode == 1 and "needs the mask key" in no_key.stderr
    short = copy(json.dumps([{"table": "public.t", "mask": {"email": "hmac"}}]),
                 env={"NIGHTCOPY_MASK_KEY": "abc"})
    assert short.returncode == 1 and "mask_key is too short" in short.stderr
    bad = copy(json.dumps([{"table": "public.t", "mask": {"email": "md5"}}]))
    assert bad.returncode == 1 and 'must map each column to "null" or "hmac"' in bad.stderr
    assert dbs.target.query("SELECT to_regclass('public.t') IS NULL") == [(True,)]


def test_drift_is_quiet_about_masks_and_names_an_added_sensitive_column(copy, dbs):
    dbs.source.execute("CREATE TABLE public.people (id int PRIMARY KEY, email text, "
                       "secret text, note text); INSERT INTO public.people VALUES (1, 'a', 'b', 'c')")
    env = {"NIGHTCOPY_MASK_KEY": KEY}
    assert copy("public.people").returncode == 0  # night 1: recorded in the clear
    masked = json.dumps([{"table": "public.people", "exclude_columns": ["secret"],
                          "mask": {"email": "hmac"}}])
    night2 = copy(masked, env=env)
    assert night2.returncode == 0, night2.stderr
    assert night2.events_of("schema_changed") == []  # excluded/masked: intended, no drift
    dbs.source.execute("ALTER TABLE public.people ADD COLUMN backup_Email text, "
                       "ADD COLUMN city text")
    night3 = copy(masked, env=env)
    assert night3.returncode == 0, night3.stderr
    changed, = night3.events_of("schema_changed")
    assert changed["changes"] == [
        "column backup_email added (text): its name matches sensitive_column_patterns "
        "*email*: decide (exclude_columns or mask in the table list, or copy it knowingly)",
        "column city added (text)"]


def test_the_key_comes_from_ssm_or_the_config_file_and_reaches_workers_by_environment(
        ssm, tmp_path):
    from nightcopy.cli.copy_command import options_from_argv
    from nightcopy.ops import config_file
    from nightcopy.ops.local_run import worker_env

    for name, value in (("source_dsn", "host=/nonexistent/a dbname=a"),
                        ("target_dsn", "host=/nonexistent/b dbname=b"), ("mask_key", KEY)):
        ssm.put_parameter(Name=f"/nc/masks/{name}", Value=value, Type="SecureString")
    opts = options_from_argv(["--ssm-prefix", "/nc/masks", "--tables", "public.t"])
    assert opts.mask_key == KEY
    path = tmp_path / "nightcopy.toml"
    path.write_text('source_dsn = "host=/a dbname=a"\ntarget_dsn = "host=/b dbname=b"\n'
                    'mask_key = "env:MY_MASK_KEY"\n[[groups]]\nname = "g"\ntables = ["public.t"]\n')
    config = config_file.load_file(path, environ={"MY_MASK_KEY": KEY})
    assert config.mask_key == KEY
    assert worker_env("a", "b", config.mask_key)["NIGHTCOPY_MASK_KEY"] == KEY


def test_a_partition_key_over_a_left_out_column_fails_the_table_in_one_line(copy, dbs):
    """A plain-column partition key (pg_depend records it the other way round from an
    expression key) over an excluded or masked column: the table fails naming it, before
    anything is created; the other tables are copied."""
    dbs.source.execute("""
        CREATE TABLE public.events (id int, region text) PARTITION BY LIST (region);
        CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu');
        INSERT INTO public.events VALUES (1, 'eu');
        CREATE TABLE public.plain (id int); INSERT INTO public.plain VALUES (1);""")
    for entry in ({"exclude_columns": ["region"]}, {"mask": {"region": "null"}}):
        how = "excluded" if "exclude_columns" in entry else "masked"
        result = copy(json.dumps([{"table": "public.events", **entry}, "public.plain"]))
        assert result.returncode == 1, result.stderr
        [failed] = result.events_of("table_failed")
        assert failed["error"] == (f"public.events: its partition key uses the {how} column "
                                   "region: a partitioned table cannot be copied without it "
                                   "(mask other columns)")
        assert dbs.target.scalar("SELECT to_regclass('public.events')") is None
        assert dbs.target.scalar("SELECT count(*) FROM public.plain") == 1
