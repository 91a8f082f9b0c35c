"""Moving rows: COPY TO STDOUT on the source streamed into COPY FROM STDIN on the target.

The two COPYs run at once (one in a helper thread) joined by an OS pipe, so no temp file is
written and memory stays bounded by the pipe and its buffers whatever the table's size.
psycopg2 releases the GIL while it waits on the network, so both sides run in parallel.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from psycopg2.extensions import connection

CHUNK = 256 * 1024  # bytes handed to the target per read: few Python calls per MB
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # Linux fcntl; where it fails the default 64 KiB pipe is used


def limit_heap_retention() -> None:
    """Keep the worker's memory flat however much data it streams (glibc only).

    Each COPY row arrives as a bytes object, and each read hands the target a 256 KiB chunk.
    glibc raises its mmap/trim thresholds dynamically once a large buffer is freed; from then on
    these allocations are carved from per-thread heaps that fragment and are never trimmed, so
    with two big tables streaming at once RSS crept from 33 MB to 63-97 MB (measured with two
    tables of 1.8M and 2.4M wide rows, and by scripts/bench at 2x data). A fixed trim threshold
    turns the dynamic adjustment off: RSS stayed at 33 MB in the same runs, for ~0.25 client
    CPU-seconds per GB streamed (the chunks are mmapped and unmapped again).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, 4 << 20)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): nothing to tune


_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h


class SourceStreamError(Exception):
    """The source side of a COPY failed; `cause` holds the original exception."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class StreamResult:
    rows_out: int
    rows_in: int
    bytes: int
    seconds: float


class _CountingReader:
    """What the target's COPY reads from; counts bytes, reports progress, surfaces source errors."""

    def __init__(self, fd: int, failed: Callable[[], BaseException | None],
                 progress: Callable[[int], None] | None, every: float):
        self._file = os.fdopen(fd, "rb", buffering=0)
        self._failed = failed
        self._progress = progress
        self._every = every
        self._next = time.monotonic() + every
        self.bytes = 0

    def read(self, size: int = CHUNK) -> bytes:
        data = self._file.read(size)
        if not data:
            error = self._failed()
            if error is not None:
                # Make the target's COPY fail instead of committing a truncated table.
                raise SourceStreamError(error)
            return data
        self.bytes += len(data)
        if self._progress is not None and time.monotonic() >= self._next:
            self._next = time.monotonic() + self._every
            self._progress(self.bytes)
        return data

    readline = read

    def close(self) -> None:
        self._file.close()


def stream(source: connection, target: connection, copy_out: str, copy_in: str,
           progress: Callable[[int], None] | None = None, progress_every: float = 30.0
           ) -> StreamResult:
    """Run COPY OUT on source and COPY IN on target concurrently through a pipe."""
    started = time.monotonic()
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    writer = os.fdopen(write_fd, "wb", buffering=PIPE_SIZE)
    errors: list[BaseException] = []
    rows_out = [0]

    def produce() -> None:
        try:
            with source.cursor() as cur:
                cur.copy_expert(copy_out, writer, size=CHUNK)
                rows_out[0] = cur.rowcount
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            errors.append(exc)
        finally:
            # OSError: the reader is gone (target failed), nothing left to flush.
            with contextlib.suppress(OSError):
                writer.close()

    reader = _CountingReader(read_fd, lambda: errors[0] if errors else None, progress,
                             progress_every)
    thread = threading.Thread(target=produce, name="nightcopy-copy-out", daemon=True)
    thread.start()
    try:
        with target.cursor() as cur:
            cur.copy_expert(copy_in, reader, size=CHUNK)
            rows_in = cur.rowcount
    except BaseException:
        reader.close()  # unblocks the producer (EPIPE) so the thread ends
        thread.join()
        if errors and not isinstance(errors[0], BrokenPipeError):
            raise SourceStreamError(errors[0]) from None
        raise
    reader.close()
    thread.join()
    if errors:
        raise SourceStreamError(errors[0])
    return StreamResult(rows_out[0], rows_in, reader.bytes, time.monotonic() - started)
