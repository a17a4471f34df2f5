"""The pure reckoning of :mod:`bench.bench_caseload`: percentiles, what was expected to escalate and what did,
what was lost or doubled, and the Prefect API calls in a server's access log. Standard library only, and no
import from ``bench`` or ``engine``: ``tests/test_bench_caseload.py`` loads this file by its path (the tests do
not have the repository root on ``sys.path``) and checks it on small hand-made rows.

Times here are wall seconds (``time.time()`` epoch floats): the bench converts the store's pathway times with the
store's clock before calling in, so nothing here knows about compressed clocks.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "NO_ESCALATION_KINDS",
    "Escalation",
    "Reckoning",
    "RunRow",
    "Rung",
    "api_calls",
    "leftover_runs",
    "percentile",
    "reckon",
    "run_start_split",
    "summary",
]

#: Work items whose rungs move the episode instead of alerting anyone (``timeout``): never an escalation.
NO_ESCALATION_KINDS = frozenset({"timeout"})


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the closest ranks; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float | int | None]:
    """``{"n", "p50", "p95", "p99", "max"}``, rounded; None for each figure when there are no values (JSON null)."""

    def r(x: float) -> float | None:
        return None if math.isnan(x) else round(x, digits)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None,
    }


@dataclass(frozen=True)
class Rung:
    """One rung as the store has it: its item's kind, when it was due and when it stopped being able to fire
    (``stopped``: its item closed, or an earlier rung of the item was acknowledged; None while it can), and when it
    last got a Prefect run (``scheduled``; None: never) and which run that is (``run``: its Prefect id)."""

    id: str
    kind: str
    due: float
    stopped: float | None = None
    scheduled: float | None = None
    run: str | None = None
    #: Its place in its item's ladder (0: the first rung, whose run a request schedules; later ones are scheduled
    #: when the rung before them fires).
    index: int = 0


@dataclass(frozen=True)
class Escalation:
    """One escalation row: the rung, when it was raised, when every contact's outcome was recorded (None: not)."""

    rung_id: str
    raised: float
    delivered: float | None = None


@dataclass
class Reckoning:
    """What came due and what happened to it, for the rungs due by the horizon.

    - ``expected``: rungs of alerting items due by the horizon that were still able to fire when they came due;
    - ``raised`` / ``delivered``: those escalated / whose escalation has every delivery outcome recorded;
    - ``raced``: came due, were not escalated, and their item was met within ``bound`` after the due time (the
      event beat a late escalation: not lost, but the escalation never happened);
    - ``lost``: came due and were neither escalated within ``bound`` nor stopped within it, or were escalated
      without a delivery outcome (rung id -> why);
    - ``doubled``: a rung escalated more than once, or a contact that got more than one message for one rung;
    - ``lateness`` / ``delivery_lateness``: per escalated expected rung, seconds from due to raised / delivered;
    - ``timer_after_due``: the escalated ones whose run was made only after they were due, or never (their
      follow-up came late, and a run or the sweep fired them late), as against a run that was waiting in time.
    """

    expected: int = 0
    raised: int = 0
    delivered: int = 0
    raced: int = 0
    pending: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    doubled: dict[str, str] = field(default_factory=dict)
    lateness: dict[str, float] = field(default_factory=dict)
    delivery_lateness: dict[str, float] = field(default_factory=dict)
    timer_after_due: set[str] = field(default_factory=set)
    unexpected: int = 0


def reckon(
    rungs: Iterable[Rung],
    escalations: Iterable[Escalation],
    messages: Mapping[tuple[str, str], int],
    *,
    horizon: float,
    now: float,
    bound: float,
) -> Reckoning:
    """Judge every rung due by ``horizon`` at wall time ``now``; a rung not escalated ``bound`` seconds after its
    due time (and not stopped by then) is lost; before that it is ``pending``. ``messages`` counts what each
    contact received per rung: ``(rung id, contact) -> n``."""
    out = Reckoning()
    by_rung: dict[str, list[Escalation]] = {}
    for esc in escalations:
        by_rung.setdefault(esc.rung_id, []).append(esc)
    for rung_id, rows in by_rung.items():
        if len(rows) > 1:
            out.doubled[rung_id] = f"escalated {len(rows)} times"
    for (rung_id, contact), n in messages.items():
        if n > 1:
            out.doubled.setdefault(rung_id, f"{contact} notified {n} times")
    expected_ids = set()
    for rung in rungs:
        if rung.kind in NO_ESCALATION_KINDS or rung.due > horizon:
            continue
        if rung.stopped is not None and rung.stopped < rung.due:
            continue  # met or acknowledged before it came due: nothing to escalate
        out.expected += 1
        expected_ids.add(rung.id)
        raised = by_rung.get(rung.id)
        if raised:
            first = min(raised, key=lambda e: e.raised)
            out.raised += 1
            out.lateness[rung.id] = first.raised - rung.due
            if rung.scheduled is None or rung.scheduled > rung.due:
                out.timer_after_due.add(rung.id)
            if first.delivered is not None:
                out.delivered += 1
                out.delivery_lateness[rung.id] = first.delivered - rung.due
            elif now - first.raised > bound:
                out.lost[rung.id] = "escalated, no delivery outcome"
            else:
                out.pending += 1
        elif rung.stopped is not None and rung.stopped - rung.due <= bound:
            out.raced += 1
        elif rung.stopped is not None:
            out.lost[rung.id] = f"not escalated; its item closed {rung.stopped - rung.due:.0f} s after due"
        elif now - rung.due > bound:
            out.lost[rung.id] = f"not escalated {now - rung.due:.0f} s after due"
        else:
            out.pending += 1
    out.unexpected = sum(1 for rung_id in by_rung if rung_id not in expected_ids)
    return out


def run_start_split(
    rungs: Iterable[Rung], lateness: Mapping[str, float], started: Mapping[str, float]
) -> dict[str, list[float]]:
    """Where an escalated rung's lateness went, for those whose run is known to have started (``started``: run id
    -> wall time it went Running): ``before_run_started`` (its run's process was not running yet when it came due:
    the start lag past the due time) and ``after_run_started`` (the rest: the run was running but fired it late)."""
    out: dict[str, list[float]] = {"before_run_started": [], "after_run_started": []}
    for rung in rungs:
        late = lateness.get(rung.id)
        start = started.get(rung.run) if rung.run is not None else None
        if late is None or start is None:
            continue
        waited = min(max(0.0, start - rung.due), max(0.0, late))
        out["before_run_started"].append(waited)
        out["after_run_started"].append(late - waited)
    return out


_ACCESS = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) (/api/[^ ?"]*)[^"]*" (\d{3})')
_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def api_calls(lines: Iterable[str]) -> Counter[str]:
    """Requests in a Prefect server's access log (uvicorn's ``"POST /api/flow_runs/filter HTTP/1.1" 200``),
    by ``METHOD /path`` with ids as ``{id}`` and names of deployments as ``{name}``; answers of 500 and above are
    also counted under ``(5xx)``."""
    out: Counter[str] = Counter()
    for line in lines:
        found = _ACCESS.search(line)
        if found is None:
            continue
        method, path, status = found.groups()
        path = _ID.sub("/{id}", path.removeprefix("/api"))
        if path.startswith("/deployments/name/"):
            path = "/deployments/name/{name}"
        out[f"{method} {path}"] += 1
        if int(status) >= 500:
            out["(5xx)"] += 1
    return out


@dataclass(frozen=True)
class RunRow:
    """A Prefect flow run not in a final state: its state type, when it is scheduled to start (None: unknown),
    since when it is in that state, and whether it belongs to a deployment."""

    name: str
    state: str
    scheduled: float | None
    since: float
    deployment: bool


def leftover_runs(
    runs: Iterable[RunRow], now: float, *, horizon: float | None = None, in_flight: float = 60.0
) -> dict[str, list[str]]:
    """Sort non-final runs into ``timers`` (Scheduled for a time still ahead, or after ``horizon``, the end of the
    measured drive: a later rung of an open episode, or the daily measures), ``in_flight`` (picked up, running or
    cancelling for under ``in_flight`` seconds, or due within it) and ``left`` (anything else: late, stuck,
    orphaned), each a list of ``state name`` descriptions."""
    out: dict[str, list[str]] = {"timers": [], "in_flight": [], "left": []}
    ahead = now if horizon is None else min(now, horizon)
    for run in runs:
        label = f"{run.state} {run.name}"
        if run.state == "SCHEDULED" and run.scheduled is not None and run.scheduled > ahead:
            out["timers"].append(label)
        elif now - max(run.since, run.scheduled or run.since) < in_flight:
            out["in_flight"].append(label)
        else:
            out["left"].append(label)
    return out
