"""The shrink guard (issue 17): a new copy far smaller than the reporting copy is not swapped in.

Each test copies a night, makes the source lose rows, and copies again: refused, the reporting
table is the very same one (same relfilenode, same rows: readers never saw the small copy).
"""

from __future__ import annotations

import pytest

TABLE_SQL = """
CREATE TABLE public.orders (id int PRIMARY KEY, note text);
INSERT INTO public.orders SELECT g, 'o' || g FROM generate_series(1, 2000) g;
"""


def _refusal(rows: int, previous: str, pct: str, table: str = "public.orders") -> str:
    return (f"{table}: the source has {rows:,} rows, the reporting copy {previous} ({pct} %); "
            f"kept last night's copy; --shrink-guard off or --allow-shrink {table} to copy it "
            "anyway")


def _identity(dbs, table: str = "public.orders") -> tuple[int, int]:
    """(relfilenode, rows) of the reporting table."""
    return (dbs.target.scalar(f"SELECT pg_relation_filenode('{table}')"),
            dbs.target.scalar(f"SELECT count(*) FROM {table}"))


def _failed(result) -> dict[str, str]:
    return {e["table"]: e["error"] for e in result.events_of("table_failed")}


@pytest.fixture
def night0(copy, dbs) -> tuple[int, int]:
    dbs.source.execute(TABLE_SQL)
    first = copy("public.orders")
    assert first.returncode == 0, first.stderr
    return _identity(dbs)


@pytest.mark.parametrize("strategy", ["swap", "truncate"])
def test_a_90_percent_shrink_is_refused_and_the_old_table_kept(copy, dbs, night0, strategy):
    dbs.source.execute("DELETE FROM public.orders WHERE id > 200")
    result = copy("public.orders", "--strategy", strategy)
    assert result.returncode == 1, result.stderr
    assert _failed(result) == {"public.orders": _refusal(200, "2,000", "-90.0")}
    assert _identity(dbs) == night0
    summary = result.events_of("run_summary")[0]
    assert summary["status"] == "failed" and summary["failed_tables"] == ["public.orders"]
    assert [e["attempts"] for e in result.events_of("table_failed")] == [1]  # not retried
    assert "Traceback" not in result.stderr
    assert dbs.target.scalar("SELECT to_regclass('nightcopy_stage_public.orders')") is None
    # The ledger records the failure, and the next night still compares with night 0's copy.
    assert dbs.target.scalar("SELECT status FROM nightcopy.table_results "
                             "ORDER BY finished_at DESC LIMIT 1") == "failed"
    again = copy("public.orders", "--strategy", strategy)
    assert _failed(again) == {"public.orders": _refusal(200, "2,000", "-90.0")}


def test_a_10_percent_shrink_is_copied(copy, dbs, night0):
    dbs.source.execute("DELETE FROM public.orders WHERE id > 1800")
    result = copy("public.orders")
    assert result.returncode == 0, result.stderr
    assert _identity(dbs)[1] == 1800


@pytest.mark.parametrize("strategy", ["swap", "truncate"])
def test_guard_off_and_allow_shrink_copy_the_small_table(copy, dbs, night0, strategy):
    dbs.source.execute("DELETE FROM public.orders WHERE id > 200")
    allowed = copy("public.orders", "--strategy", strategy, "--allow-shrink", "public.orders")
    assert allowed.returncode == 0, allowed.stderr
    assert _identity(dbs)[1] == 200
    assert "copied anyway (--allow-shrink)" in allowed.stderr
    dbs.source.execute("DELETE FROM public.orders WHERE id > 10")  # 200 rows: under the minimum
    assert copy("public.orders", "--strategy", strategy).returncode == 0
    dbs.source.execute("INSERT INTO public.orders SELECT g FROM generate_series(11, 5000) g")
    assert copy("public.orders", "--strategy", strategy).returncode == 0
    dbs.source.execute("DELETE FROM public.orders")
    off = copy("public.orders", "--strategy", strategy, "--shrink-guard", "off")
    assert off.returncode == 0, off.stderr
    assert _identity(dbs)[1] == 0


def test_the_threshold_and_minimum_are_options(copy, dbs, night0):
    dbs.source.execute("DELETE FROM public.orders WHERE id > 1800")
    strict = copy("public.orders", env={"NIGHTCOPY_SHRINK_GUARD": "5"})
    assert _failed(strict) == {"public.orders": _refusal(1800, "2,000", "-10.0")}
    dbs.source.execute("DELETE FROM public.orders WHERE id > 100")
    small = copy("public.orders", "--shrink-guard-min-rows", "2001")
    assert small.returncode == 0, small.stderr


def test_a_refused_table_keeps_its_linked_unit_on_last_night(copy, dbs, night0):
    """A target view reads orders and customers together: customers keeps last night too."""
    dbs.source.execute("CREATE TABLE public.customers (id int PRIMARY KEY, night int);"
                       "INSERT INTO public.customers VALUES (1, 0)")
    assert copy("public.orders,public.customers").returncode == 0
    dbs.target.execute("CREATE VIEW public.both_nights AS SELECT o.id, c.night "
                       "FROM public.orders o, public.customers c")
    dbs.source.execute("DELETE FROM public.orders WHERE id > 100; "
                       "UPDATE public.customers SET night = 1")
    result = copy("public.orders,public.customers")
    failed = _failed(result)
    assert failed["public.orders"] == _refusal(100, "2,000", "-95.0")
    assert "public.orders" in failed["public.customers"], failed
    assert dbs.target.scalar("SELECT night FROM public.customers") == 0


def test_without_a_ledger_record_the_target_is_counted(copy, dbs):
    """A reporting table nightcopy did not create (named explicitly, so it may be replaced):
    the guard counts its rows, and says so."""
    dbs.source.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text);"
                       "INSERT INTO public.orders VALUES (1, 'a')")
    dbs.target.execute(TABLE_SQL)
    before = _identity(dbs)
    result = copy("public.orders")
    assert _failed(result) == {"public.orders": _refusal(1, "2,000", "-100.0")}
    assert "counted its rows for the shrink guard (2,000)" in result.stderr
    assert _identity(dbs) == before


def test_a_table_new_or_empty_on_the_target_is_never_refused(copy, dbs):
    dbs.source.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text)")
    dbs.target.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text)")
    assert copy("public.orders").returncode == 0  # empty there
    dbs.source.execute("CREATE TABLE public.fresh (id int)")
    assert copy("public.fresh").returncode == 0  # new there


def test_a_malformed_allow_shrink_is_one_line(copy, dbs):
    result = copy("public.orders", "--allow-shrink", "public.")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "--allow-shrink" in result.stderr, result.stderr


def test_a_table_entry_sets_its_own_threshold(copy, dbs, night0):
    """The object form of a table-list entry: its shrink_guard wins over the option."""
    dbs.source.execute("DELETE FROM public.orders WHERE id > 1800")
    strict = copy('[{"table": "public.orders", "shrink_guard": 5}]')
    assert _failed(strict) == {"public.orders": _refusal(1800, "2,000", "-10.0")}
    dbs.source.execute("DELETE FROM public.orders WHERE id > 100")
    off = copy('[{"table": "public.orders", "shrink_guard": "off"}]', "--shrink-guard", "1")
    assert off.returncode == 0, off.stderr
    assert _identity(dbs)[1] == 100


@pytest.mark.parametrize("strategy", ["swap", "truncate"])
def test_readers_during_a_refused_copy_only_ever_see_last_nights_rows(copy, dbs, night0,
                                                                      strategy):
    """A reader polling the table through the whole refused copy sees 2,000 rows every time
    (truncate's in-place load is rolled back before anyone can read it) and no error."""
    from tests.pgutil import PollingReader

    dbs.source.execute("DELETE FROM public.orders WHERE id > 200")
    with PollingReader(dbs.target.dsn, "SELECT count(*) FROM public.orders") as reader:
        result = copy("public.orders", "--strategy", strategy)
    assert result.returncode == 1, result.stderr
    assert reader.errors == [] and reader.seen, reader.errors
    assert set(reader.seen) == {2000}, sorted(set(reader.seen))
    assert _identity(dbs) == night0
