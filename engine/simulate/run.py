"""A cohort: every person simulated on their own (deterministic for a seed), over one or two processes.

People are independent, so they split across processes in contiguous blocks and merge back by index: the result is
the same whatever ``workers`` is.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.episode.history import EpisodeHistory
from engine.plan.model import Plan
from engine.simulate.driver import PersonResult, PersonScript, simulate_person
from engine.simulate.model import BehaviourModel

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """A simulated cohort: ``histories`` (what the measures read), ``script`` (per person, the time-ordered actions
    to replay it through the service and the store) and ``people`` (each person's end: stage, overdue work)."""

    plan: Plan
    start: datetime
    end: datetime
    seed: int
    people: tuple[PersonResult, ...]

    @property
    def histories(self) -> list[EpisodeHistory]:
        return [p.history for p in self.people]

    @property
    def script(self) -> list[PersonScript]:
        return [p.script for p in self.people]


_JOB: tuple[Plan, BehaviourModel, int, datetime, datetime] | None = None


def _quiet() -> None:
    """A worker ends like any process: the parent's SIGTERM handler (a CLI's clean exit) is not its own."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _block(indices: Sequence[int]) -> list[PersonResult]:
    assert _JOB is not None
    plan, model, seed, start, end = _JOB
    return [simulate_person(plan, model, seed, i, start, end) for i in indices]


def simulate(
    plan: Plan,
    model: BehaviourModel,
    people: int,
    days: int,
    seed: int,
    start: datetime,
    *,
    workers: int = 1,
) -> SimulationResult:
    """Simulate ``people`` people on ``plan`` from ``start`` for ``days`` days; ``workers`` > 1 forks that many
    processes (where ``fork`` exists; the answer does not depend on it)."""
    global _JOB
    end = start + timedelta(days=days)
    _JOB = (plan, model, seed, start, end)
    try:
        indices = list(range(people))
        workers = max(1, min(workers, people // 200 or 1))
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            results = _block(indices)
        else:
            size = -(-people // workers)
            blocks = [indices[i : i + size] for i in range(0, people, size)]
            with multiprocessing.get_context("fork").Pool(workers, initializer=_quiet) as pool:
                results = [r for block in pool.map(_block, blocks) for r in block]
                pool.close()  # let the workers end on their own (terminating them is a signal)
                pool.join()
    finally:
        _JOB = None
    return SimulationResult(plan, start, end, seed, tuple(results))
