"""Work on several episodes at once, in threads that carry the caller's context.

Firing a rung or following up an episode mostly waits (its contacts' deliveries, the store, Prefect's cancels), so a
minute's deadlines or an outage's backlog go several times faster side by side; each thread runs in a copy of the
caller's context, so the work joins the caller's deferred scheduling and publishing
(:func:`engine.app.followup.batched`) and its Prefect run context (its logs and artifacts)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["side_by_side"]

T = TypeVar("T")
U = TypeVar("U")


def side_by_side(work: Callable[[U], T], items: Iterable[U], at_once: int, name: str) -> list[T]:
    """``work`` on each item, at most ``at_once`` at a time (threads named ``name``); results in order, the first
    exception raised once all are done."""
    items = list(items)
    if len(items) <= 1 or at_once <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(at_once, len(items)), thread_name_prefix=name) as pool:
        futures = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
        return [future.result() for future in futures]
