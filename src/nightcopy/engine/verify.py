"""--verify checksum: an order-independent checksum of a table's rows, the same SQL on both
sides (the sessions share TimeZone, DateStyle, IntervalStyle, extra_float_digits, lc_monetary,
bytea_output and search_path, so each row's text form is identical)."""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine.pg_rows import one_row
from nightcopy.engine.sql_names import quote_ident


def checksum_sql(table: str, columns: list[str], only: bool = False) -> str:
    """only=True reads the table without its inheritance children (as COPY does)."""
    row = ", ".join(quote_ident(c) for c in columns)
    # Sum of the first 64 bits of each row's md5, as numeric so it cannot overflow.
    return (f"SELECT count(*), COALESCE(sum(('x' || left(md5(ROW({row})::text), 16))"
            f"::bit(64)::bigint::numeric), 0) FROM {'ONLY ' if only else ''}{table}")


def checksum(conn: connection, table: str, columns: list[str], only: bool = False
             ) -> tuple[int, str]:
    with conn.cursor() as cur:
        cur.execute(checksum_sql(table, columns, only))
        count, total = one_row(cur)
    return int(count), str(total)
