"""What a simulated cohort shows a designer: where people end, how long they stay, how handoffs go, where episodes
stall (stage x overdue work) and how many alerts each role gets per week; one cohort, or two pathway versions side
by side on the same seed. Rendered as text (the terminal), JSON (machines) or one HTML page (:mod:`.page`).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from engine.measures import MeasureReport, compute_measures, render_html
from engine.simulate.run import SimulationResult
from engine.simulate.sankey import Flows, flows

__all__ = [
    "Summary",
    "cohort_measures",
    "escalation_load",
    "measures_section",
    "render_json",
    "render_text",
    "stalls",
    "summarize",
]


@dataclass(frozen=True)
class Summary:
    """The numbers of one simulated cohort (see the module docstring)."""

    pathway_id: str
    version: int
    people: int
    days: int
    seed: int
    ended: dict[str, int]  # final stage -> people
    stays: dict[str, tuple[int, float | None]]  # stage -> (stays ended, median days of those)
    handoffs: dict[str, int]  # opened, then each step met, and final states
    escalations: dict[str, int]  # total, critical, acknowledged
    load: dict[str, list[int]]  # role -> alerts per week of the simulation
    stalls: list[tuple[str, str, int]]  # (stage, overdue work item, episodes), most first
    refused: dict[str, int]  # events the rules refused (the model drew them where the pathway does not allow them)
    flows: Flows

    @property
    def weeks(self) -> int:
        return -(-self.days // 7)


def escalation_load(result: SimulationResult) -> dict[str, list[int]]:
    """Per role, the escalations raised in each week of the simulation (week 1 starts at ``start``)."""
    weeks = -(-(result.end - result.start).days // 7)
    load: dict[str, list[int]] = {}
    for history in result.histories:
        for raised in history.escalations:
            week = min((raised.raised_at - result.start) // timedelta(days=7), weeks - 1)
            load.setdefault(raised.role, [0] * weeks)[week] += 1
    return dict(sorted(load.items()))


def stalls(result: SimulationResult) -> list[tuple[str, str, int]]:
    """(stage, overdue work item key, episodes) for episodes still active at the end, most frequent first."""
    found: Counter[tuple[str, str]] = Counter()
    for person in result.people:
        if person.status == "active":
            for key in set(person.overdue):
                found[(person.stage, key)] += 1
    return [(stage, key, n) for (stage, key), n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))]


def summarize(result: SimulationResult) -> Summary:
    """Every number of the report, from the result alone."""
    histories = result.histories
    ended = Counter(p.stage for p in result.people)
    lengths: dict[str, list[float]] = {}
    for h in histories:
        for stay in h.stays:
            if stay.left_at is not None:
                lengths.setdefault(stay.stage, []).append((stay.left_at - stay.entered_at) / timedelta(days=1))
    stays = {
        s: (len(lengths.get(s, [])), round(statistics.median(lengths[s]), 1) if lengths.get(s) else None)
        for s in result.plan.stages
    }
    handoffs: Counter[str] = Counter()
    for h in histories:
        for track in h.handoffs:
            handoffs["opened"] += 1
            handoffs.update(f"step {k}" for k in track.steps)
            handoffs[f"ended {track.status}"] += 1
    raised = [r for h in histories for r in h.escalations]
    escalations = {
        "total": len(raised),
        "critical": sum(r.severity == "critical" for r in raised),
        "acknowledged": sum(r.acknowledged_at is not None for r in raised),
    }
    refused: Counter[str] = Counter()
    for p in result.people:
        refused.update(p.refused)
    return Summary(
        pathway_id=result.plan.pathway_id,
        version=result.plan.version,
        people=len(result.people),
        days=(result.end - result.start).days,
        seed=result.seed,
        ended=dict(ended.most_common()),
        stays=stays,
        handoffs=dict(sorted(handoffs.items())),
        escalations=escalations,
        load=escalation_load(result),
        stalls=stalls(result),
        refused=dict(refused.most_common()),
        flows=flows(histories),
    )


def _rows(s: Summary) -> list[tuple[str, str]]:
    """(label, value) lines of one summary; two summaries line up by label."""
    per100 = 100 * s.escalations["total"] / max(s.people, 1)
    rows = [("people", f"{s.people:,}"), ("days", f"{s.days}")]
    rows += [(f"ended in {stage}", f"{n:,} ({100 * n / max(s.people, 1):.0f}%)") for stage, n in s.ended.items()]
    for stage, (n, median) in s.stays.items():
        if n:
            rows.append((f"stays ended: {stage}", f"{n:,}, median {median:g} d"))
    rows += [(f"handoffs {k}", f"{n:,}") for k, n in s.handoffs.items()]
    rows += [
        ("escalations", f"{s.escalations['total']:,} ({per100:.0f} per 100 episodes)"),
        ("critical alerts", f"{s.escalations['critical']:,}"),
        ("acknowledged", f"{s.escalations['acknowledged']:,}"),
    ]
    for role, weeks in s.load.items():
        rows.append((f"alerts/week: {role}", f"mean {sum(weeks) / max(len(weeks), 1):.1f}, peak {max(weeks)}"))
    rows += [(f"stalled: {stage} / {key}", f"{n:,}") for stage, key, n in s.stalls[:12]]
    rows += [(f"refused: {name}", f"{n:,}") for name, n in s.refused.items()]
    return rows


def render_text(summary: Summary, against: Summary | None = None) -> str:
    """The report as aligned text; with ``against``, the two versions side by side (same seed, same people)."""
    mine = _rows(summary)
    title = f"{summary.pathway_id} v{summary.version}"
    if against is None:
        width = max(len(label) for label, _ in mine)
        lines = [f"simulated {title}: {summary.people:,} people, {summary.days} days, seed {summary.seed}", ""]
        return "\n".join(lines + [f"{label:<{width}}  {value}" for label, value in mine])
    theirs = dict(_rows(against))
    labels = list(dict.fromkeys([label for label, _ in mine] + list(theirs)))
    values = dict(mine)
    width = max(len(label) for label in labels)
    col = max([len(title), *(len(v) for v in values.values())]) + 2
    other = f"{against.pathway_id} v{against.version}"
    lines = [f"{'':<{width}}  {title:<{col}}{other}"]
    lines += [f"{label:<{width}}  {values.get(label, '-'):<{col}}{theirs.get(label, '-')}" for label in labels]
    return "\n".join(lines)


def _plain(s: Summary) -> dict[str, Any]:
    out = asdict(s)
    out["stalls"] = [{"stage": st, "item": key, "episodes": n} for st, key, n in s.stalls]
    out["stays"] = {k: {"ended": n, "median_days": m} for k, (n, m) in s.stays.items()}
    out["flows"] = {
        "nodes": [{"column": c, "stage": st, "stays": n} for (c, st), n in sorted(s.flows.nodes.items())],
        "links": [{"column": c, "from": a, "to": b, "episodes": n} for (c, a, b), n in sorted(s.flows.links.items())],
    }
    return out


def render_json(summary: Summary, against: Summary | None = None, measures: Any = None) -> str:
    """The report as JSON: ``{"simulation": ..., "against": ...}`` (``against`` only when compared)."""
    body: dict[str, Any] = {"simulation": _plain(summary)}
    if against is not None:
        body["against"] = _plain(against)
    if measures is not None:
        body["measures"] = measures
    return json.dumps(body, indent=2, default=str)


def cohort_measures(result: SimulationResult, stratify: str | None = None, min_cell: int = 1) -> MeasureReport:
    """The quality measures (:func:`engine.measures.compute_measures`) of the simulated cohort, judged as of the
    simulation's end (a window still open then is not judged). Nothing is suppressed by default: simulated people
    are nobody (``min_cell=11`` shows what a published report of the same cohort would hide)."""
    plans = {(result.plan.pathway_id, result.plan.version): result.plan}
    return compute_measures(result.histories, plans, stratify=stratify, as_of=result.end, min_cell=min_cell)


def measures_section(report: MeasureReport, title: str) -> str:
    """The measures' own page (:func:`engine.measures.render_html`), its body only, to sit inside ours."""
    page = render_html(report, title)
    body = page[page.index("<body>") + len("<body>") : page.rindex("</body>")]
    style = page[page.index("<style>") : page.index("</style>") + len("</style>")]
    return f"<section>{style}{body}</section>"
