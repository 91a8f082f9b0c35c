"""Reporting readers: threads looping over random queries of the copied tables and the views.

Half of them run each query on its own (autocommit), the others in transactions of their own
(READ COMMITTED or REPEATABLE READ, two or three queries each), as dashboards and ad-hoc
reports do. Every statement is recorded with its start, end, result or error.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import psycopg2

from stresslib.world import QUERIES, one


@dataclass
class Observation:
    reader: int
    relation: str
    txn_start: float  # the statement's own start in autocommit, its transaction's otherwise
    start: float
    end: float
    result: tuple | None  # (rows, checksum, nights seen)
    error: str | None = None  # "SQLSTATE: first line" of a failed statement

    @property
    def wait(self) -> float:
        return self.end - self.start


class Reader(threading.Thread):
    def __init__(self, number: int, dsn: str, in_transactions: bool, seed: int,
                 pause: float = 0.005):
        super().__init__(daemon=True, name=f"swap-stress-reader-{number}")
        self.number, self.dsn, self.in_transactions = number, dsn, in_transactions
        self.random = random.Random(seed)
        self.pause = pause
        self.observations: list[Observation] = []
        self.stopping = threading.Event()
        self.crash: BaseException | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            conn = psycopg2.connect(self.dsn, application_name=f"swap-stress-reader-{self.number}")
            conn.autocommit = True
            try:
                while not self.stopping.is_set():
                    if self.in_transactions:
                        self._one_transaction(conn)
                    else:
                        self._statement(conn, time.monotonic())
                    time.sleep(self.random.uniform(0, self.pause))
            finally:
                conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the harness, never lost
            self.crash = exc

    def _one_transaction(self, conn) -> None:
        level = self.random.choice(["READ COMMITTED", "REPEATABLE READ"])
        txn_start = time.monotonic()
        with conn.cursor() as cur:
            cur.execute(f"BEGIN ISOLATION LEVEL {level}")
        ok = True
        for _ in range(self.random.randint(2, 3)):
            if not self._statement(conn, txn_start):
                ok = False
                break
        with conn.cursor() as cur:
            cur.execute("COMMIT" if ok else "ROLLBACK")

    def _statement(self, conn, txn_start: float) -> bool:
        relation = self.random.choice(list(QUERIES))
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(QUERIES[relation])
                count, checksum, nights = one(cur)
            self.observations.append(Observation(self.number, relation, txn_start, start,
                                                 time.monotonic(),
                                                 (count, int(checksum), tuple(nights))))
            return True
        except psycopg2.Error as exc:
            end = time.monotonic()
            first = (str(exc).strip().splitlines() or ["?"])[0]
            self.observations.append(Observation(self.number, relation, txn_start, start, end,
                                                 None, f"{exc.pgcode}: {first}"))
            if conn.closed:
                raise
            return False  # in a transaction: the caller rolls it back


def start_readers(dsn: str, count: int, seed: int = 14) -> list[Reader]:
    readers = [Reader(i, dsn, in_transactions=i % 2 == 1, seed=seed + i) for i in range(count)]
    for r in readers:
        r.start()
    return readers


def stop_readers(readers: list[Reader]) -> list[Observation]:
    for r in readers:
        r.stop()
    for r in readers:
        r.join(30)
    crashed = [r for r in readers if r.crash is not None]
    if crashed:
        raise RuntimeError(f"reader {crashed[0].number} stopped: {crashed[0].crash!r}")
    return sorted((o for r in readers for o in r.observations), key=lambda o: o.start)
