"""Work handed over by any thread and done by one thread of its own, in batches, in the order it came.

A long-lived process (the API) answers a request from the store and hands what follows over to such a queue, so
the answer never waits for Prefect; when items come faster than the work takes, the next batch is everything
that queued meanwhile (up to ``most``): a burst costs one round of work per batch, not one per item. Each batch
runs in a copy of the context its first item was handed over in (the App the caller bound, its Prefect
settings). A process that dies with items queued leaves their work to the sweep, which finds it in the store.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from engine.errors import CarepathError

__all__ = ["Drain"]

T = TypeVar("T")
logger = logging.getLogger("carepath.dispatch")


class Drain(Generic[T]):
    """``work`` on batches of at most ``most`` items, on a thread named ``name`` started when first needed."""

    def __init__(self, name: str, work: Callable[[list[T]], None], most: int) -> None:
        self.name = name
        self.work = work
        self.most = most
        self._queue: queue.Queue[tuple[T, contextvars.Context]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, item: T) -> None:
        """Hand ``item`` over (with the caller's context) and return at once."""
        self._queue.put((item, contextvars.copy_context()))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    @property
    def unfinished(self) -> int:
        """Items handed over whose batch has not finished."""
        return self._queue.unfinished_tasks

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every item handed over is done (or ``timeout`` seconds); True when none is left."""
        end = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.05)
        return True

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.most:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                batch[0][1].run(self.work, [item for item, _context in batch])
            except CarepathError as exc:  # Prefect down or refusing: one line, and the work is the sweep's
                logger.warning("%s: %d item(s) not done (the sweep will): %s", self.name, len(batch), exc)
            except Exception:  # a bug: its stack; the work is the sweep's now and this thread must go on
                logger.exception("%s: %d item(s) not done (the sweep will)", self.name, len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
