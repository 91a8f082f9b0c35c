"""The minimal psycopg2 reference (docs/benchmark.md, `pyref`): binary COPY TO -> COPY FROM
through an OS pipe, N tables at a time, one connection pair per table (schema handled by the
caller: pre-data before, post-data after). Run as its own process by scripts/bench so its RSS and
CPU count as a client's. It shows what plain Python costs on top of the servers' COPY work, the
floor nightcopy's per-table machinery is measured against.

    python scripts/bench_pyref.py SRC_DSN TGT_DSN JOBS TABLE [TABLE ...]
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg2


def copy_table(src_dsn: str, tgt_dsn: str, table: str) -> None:
    src = psycopg2.connect(src_dsn)
    tgt = psycopg2.connect(tgt_dsn)
    rfd, wfd = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(wfd, "wb", buffering=1 << 16) as w, src.cursor() as cur:
                cur.copy_expert(f"COPY {table} TO STDOUT (FORMAT binary)", w, size=1 << 16)
        except BaseException as exc:  # reported by the caller after the join
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with os.fdopen(rfd, "rb", buffering=1 << 16) as r, tgt.cursor() as cur:
            cur.copy_expert(f"COPY {table} FROM STDIN (FORMAT binary)", r, size=1 << 16)
        tgt.commit()
    finally:
        producer.join()
        src.close()
        tgt.close()
    if errors:
        raise errors[0]


def main(argv: list[str]) -> int:
    src_dsn, tgt_dsn, jobs, *tables = argv
    with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
        for f in [pool.submit(copy_table, src_dsn, tgt_dsn, t) for t in tables]:
            f.result()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
