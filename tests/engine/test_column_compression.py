"""Column COMPRESSION is copied; a method the target server lacks (the embedded PostgreSQL 18
build has no lz4, Debian's PostgreSQL 15 has it) leaves that column on the target's default
method with a one-line warning: the rows are the same, so the table is not failed for it."""

from __future__ import annotations

from tests.conftest import Db
from tests.engine.test_cross_version import pg15  # noqa: F401 (the fixture)

COMPRESSION = """
    SELECT attname, attcompression FROM pg_attribute
     WHERE attrelid = 'public.packed'::regclass AND attnum > 0 ORDER BY attnum"""


def test_a_compression_method_the_target_lacks_falls_back_with_a_warning(
        pg15, pg_servers, cli):  # noqa: F811
    source = Db(pg15.create_database("cmp_src"))
    target = Db(pg_servers[1].create_database("cmp_tgt"))
    source.execute("""
        CREATE TABLE public.packed (id int, a text COMPRESSION lz4, b text COMPRESSION pglz);
        INSERT INTO public.packed SELECT i, repeat('a', 3000), repeat('b', 3000)
          FROM generate_series(1, 3) i;
    """)
    result = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables",
                  "public.packed"])
    assert result.returncode == 0, result.stderr
    lz4_here = "lz4" in target.scalar("SELECT enumvals FROM pg_settings "
                                      "WHERE name = 'default_toast_compression'")
    assert target.query(COMPRESSION) == [("id", ""), ("a", "l" if lz4_here else ""),
                                         ("b", "p")]
    warnings = [e["message"] for e in result.events_of("warning") if "compression" in e["message"]]
    assert warnings == ([] if lz4_here else [
        "public.packed: the target server has no lz4 compression: column a uses the target's "
        "default compression (rows are unchanged)"])
    assert target.scalar("SELECT count(*) FROM public.packed WHERE a = repeat('a', 3000)") == 3
