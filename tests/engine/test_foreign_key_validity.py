"""Foreign keys end as valid as on the source, every pg_constraint row of them included: a key
into a partitioned table has one row per referenced partition, which VALIDATE CONSTRAINT left
NOT VALID before PostgreSQL 18 (so such a key is added valid at once there)."""

from __future__ import annotations

from tests.conftest import Db
from tests.engine.test_cross_version import pg15  # noqa: F401 (the fixture)

SOURCE = """
    CREATE TABLE public.orders (id int, region text, PRIMARY KEY (id, region))
           PARTITION BY LIST (region);
    CREATE TABLE public.orders_eu PARTITION OF public.orders FOR VALUES IN ('eu');
    CREATE TABLE public.orders_us PARTITION OF public.orders FOR VALUES IN ('us');
    CREATE TABLE public.lines (id int PRIMARY KEY, order_id int, region text,
           FOREIGN KEY (order_id, region) REFERENCES public.orders);
    CREATE TABLE public.notes (id int, order_id int, region text);
    INSERT INTO public.orders VALUES (1, 'eu'), (2, 'us');
    INSERT INTO public.lines VALUES (1, 1, 'eu'), (2, 2, 'us');
    INSERT INTO public.notes VALUES (1, 9, 'eu');
    ALTER TABLE public.notes ADD CONSTRAINT notes_order_fkey FOREIGN KEY (order_id, region)
          REFERENCES public.orders NOT VALID;
"""
# The per-partition rows' names are generated, differently by each version: compared by place.
FOREIGN_KEYS = """
    SELECT conrelid::regclass::text, confrelid::regclass::text,
           CASE WHEN conparentid = 0 THEN conname END, convalidated
      FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2, 3"""


def test_keys_into_a_partitioned_table_are_valid_row_for_row_on_a_pg15_target(
        pg15, pg_servers, cli):  # noqa: F811
    source = Db(pg_servers[0].create_database("fkv_src"))
    target = Db(pg15.create_database("fkv_tgt"))
    source.execute(SOURCE)
    for _ in range(2):  # a second copy over the populated target keeps them
        result = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables",
                      "public.orders,public.lines,public.notes"])
        assert result.returncode == 0, result.stderr
        assert target.query(FOREIGN_KEYS) == source.query(FOREIGN_KEYS)
    assert ("notes", "orders", "notes_order_fkey", False) in target.query(FOREIGN_KEYS)
    assert target.scalar("SELECT count(*) FROM public.notes") == 1
