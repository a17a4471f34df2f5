"""The figures of :mod:`bench.bench_transition`: one timed transition, the two sides, the report."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from bench.transition_support import summarize

__all__ = ["AIM", "Sample", "Side", "flow_spans", "report", "run_states"]

#: Carepath's median may be at most this much above the hand-written one.
AIM = 0.10


@dataclass
class Sample:
    """One timed transition; ``retries``: API calls the Prefect client had to repeat (HTTP 503: server busy)."""

    episode_id: str
    wall_ms: float
    cpu_ms: float
    given: int  # rungs the transition gave a run, read from the store
    to_cancel: list[str]  # the runs of the rungs it closed, read from the store
    calls: Counter[str] = field(default_factory=Counter)
    retries: int = 0


@dataclass
class Side:
    label: str
    samples: list[Sample] = field(default_factory=list)


async def flow_spans(flow_names: list[str]) -> dict[str, float]:
    """Episode id -> ms the server recorded between the start and the end of its transition's flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    spans: dict[str, float] = {}
    async with get_client() as client:
        for offset in range(0, 100_000, 200):
            page = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)), limit=200, offset=offset
            )
            for run in page:
                if run.start_time and run.end_time and "episode_id" in run.parameters:
                    spans[run.parameters["episode_id"]] = (run.end_time - run.start_time).total_seconds() * 1000
            if len(page) < 200:
                break
    return spans


async def run_states(run_ids: list[str]) -> dict[str, str]:
    """Run id -> its state type (``CANCELLED``...), as the server has it now."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    states: dict[str, str] = {}
    async with get_client() as client:
        for start in range(0, len(run_ids), 200):
            ids = [UUID(r) for r in run_ids[start : start + 200]]
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200)
            states.update({str(run.id): run.state.type.value for run in runs if run.state})
    return states


def report(sides: tuple[Side, Side], spans: dict[str, float]) -> float:
    """Print the figures; returns Carepath's median over the hand-written median, minus one."""
    width = max(len(s.label) for s in sides)
    medians = {}
    for side in sides:
        med, p90 = summarize([s.wall_ms for s in side.samples])
        cmed, cp90 = summarize([s.cpu_ms for s in side.samples])
        medians[side.label] = med
        retries = sum(s.retries for s in side.samples) / len(side.samples)
        print(
            f"{side.label:<{width}}  median {med:6.0f} ms, p90 {p90:6.0f} ms per transition   "
            f"(CPU of this process: median {cmed:4.0f} ms, p90 {cp90:4.0f} ms; "
            f"{retries:.1f} client retries after HTTP 503 per transition)"
        )
    carepath, hand = (medians[s.label] for s in sides)
    ratio = carepath / hand - 1
    verdict = "met" if ratio <= AIM else "MISSED"
    if ratio >= 0:
        print(f"Carepath within {ratio:.1%} of hand-written (median; aim {AIM:.0%}: {verdict})")
    else:
        print(f"Carepath {-ratio:.1%} faster than hand-written (median; aim {AIM:.0%}: {verdict})")
    if max(sum(s.retries for s in side.samples) for side in sides) >= len(sides[0].samples) / 2:
        print(
            "note: the Prefect server answered HTTP 503 (SQLite busy) and the client waited ~2 s per retry; that "
            "dominates the figures. Overlapping calls draw them (Carepath creates 3 runs at once; see "
            "--hand-concurrency 3); compare with --prefect-db postgresql for the overhead itself"
        )
    rows: list[dict[str, float]] = []
    for side in sides:
        inside = [spans[s.episode_id] for s in side.samples if s.episode_id in spans]
        around = [s.wall_ms - spans[s.episode_id] for s in side.samples if s.episode_id in spans]
        rows.append(
            {
                "the flow run (server)": statistics.median(inside) if inside else float("nan"),
                "around it (this process)": statistics.median(around) if around else float("nan"),
                "wall": medians[side.label],
            }
        )
    print("\nwhere the time goes (median ms per transition; the flow run's span as the server recorded it):")
    print(f"  {'':<50}" + "".join(f"{s.label:>14}" for s in sides))
    for key in rows[0]:
        print(f"  {key:<50}" + "".join(f"{r[key]:14.0f}" for r in rows))
    print("HTTP calls this process made per transition (mean):")
    keys = sorted({k for side in sides for s in side.samples for k in s.calls})
    for key in keys:
        means = [sum(s.calls[key] for s in side.samples) / len(side.samples) for side in sides]
        print(f"  {key:<50}" + "".join(f"{m:14.1f}" for m in means))
    return ratio
