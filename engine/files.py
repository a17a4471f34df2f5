"""Reading a file someone named (a pathway, a roster) without hanging and without reading more than a limit.

A regular file is read as it is. Anything else that is not a folder (a FIFO, ``/dev/stdin``, a character device)
is read without blocking, for at most :data:`READ_TIMEOUT` seconds in all: a FIFO nobody writes to, or a device
that never ends, is an answer in one line rather than a command that hangs for ever.
"""

from __future__ import annotations

import os
import select
import stat
import time

__all__ = ["READ_TIMEOUT", "read_bounded"]

#: Seconds a FIFO or device may take to give all it has (regular files are not timed).
READ_TIMEOUT = 5.0
_CHUNK = 64 * 1024


def read_bounded(name: str, limit: int, timeout: float | None = None) -> bytes:
    """At most ``limit + 1`` bytes of ``name`` (one more than ``limit`` tells the caller it is too large).

    Raises :class:`OSError` when the file cannot be opened or read (missing, a folder, no permission), and
    :class:`TimeoutError` when a FIFO or device has not reached its end within ``timeout`` seconds (default
    :data:`READ_TIMEOUT`).
    """
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
            with os.fdopen(os.dup(fd), "rb") as handle:
                return handle.read(limit + 1)
        return _read_special(fd, limit, READ_TIMEOUT if timeout is None else timeout)
    finally:
        os.close(fd)


def _read_special(fd: int, limit: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(max(1, int(left * 1000))):
            raise TimeoutError(f"nothing more to read after {timeout:g} s")
        try:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
        except BlockingIOError:
            continue
        if not chunk:  # the writer closed its end (or a device at its end)
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
