"""``compute_measures``: every family over a cohort, per stratum, with small-cell suppression.

Small cells (the rule, as public-health reports apply it, e.g. CMS's cell-size policy of suppressing 1 to 10):
episodes stand for people (a history carries no person), and no printed number may rest on fewer than
``min_cell`` (11) of them:

- a stratum of fewer than ``min_cell`` episodes is shown as suppressed, and so is every cell in it;
- a rate is suppressed when its denominator's episodes, the episodes it counts as met, or the episodes it counts
  as not met (which the difference would reveal) number 1 to ``min_cell - 1``; a median or percentile when its
  episodes do; a count per 100 episodes when its denominator's episodes or the episodes it counts do;
- secondary suppression: when exactly one stratum of a measure (or of the strata list) is suppressed, the total
  minus the others would reveal it, so the next smallest stratum is suppressed too.

Zero is shown (nothing to protect). Every stratum, the total (``all``) included, is held to the same rule, so a
report can be published as it stands.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from engine.episode.history import EpisodeHistory
from engine.language.suggest import hint
from engine.measures import care, moud, operations
from engine.measures.cohort import Tally, View, moud_terms, view
from engine.measures.report import ALL, Definition, MeasureError, MeasureReport, Period, Result, Stratum
from engine.plan.model import Plan

__all__ = ["DEFINITIONS", "MIN_CELL", "NOT_SET", "compute_measures"]

#: The smallest number of people a printed number may rest on.
MIN_CELL = 11
#: The stratum of episodes without a value for the stratifying fact.
NOT_SET = "(not set)"
DEFINITIONS: tuple[Definition, ...] = (*care.DEFINITIONS, *moud.DEFINITIONS, *operations.DEFINITIONS)
_FAMILIES: tuple[Callable[[list[View], Period], list[Tally]], ...] = (
    care.follow_up,
    care.engagement,
    care.reentry,
    moud.continuity,
    operations.handoffs,
    operations.escalations,
    operations.stays,
)


def compute_measures(
    histories: Sequence[EpisodeHistory],
    plans: Mapping[tuple[str, int], Plan],
    *,
    period: Period | None = None,
    stratify: str | None = None,
    as_of: datetime | None = None,
    min_cell: int = MIN_CELL,
) -> MeasureReport:
    """Every measure on ``histories`` (each read with its plan, keyed by (pathway id, version)).

    ``period`` keeps what has its index date in it; ``stratify`` names a fact some plan declares; ``as_of`` is the
    data's horizon (default: the latest moment in the histories), before which a window must close to be judged.
    """
    missing = sorted({(h.pathway_id, h.pathway_version) for h in histories} - set(plans))
    if missing:
        raise MeasureError(f"no plan for pathway '{missing[0][0]}' version {missing[0][1]}")
    if stratify is not None:
        declared = {name for plan in plans.values() for name in plan.facts}
        if stratify not in declared:
            raise MeasureError(
                f"cannot stratify by '{stratify}': no pathway declares that fact{hint(stratify, declared)}"
            )
    horizon = as_of or max((_latest(h) for h in histories), default=None)
    terms = {key: moud_terms(plan) for key, plan in plans.items()}
    keys = [(h.pathway_id, h.pathway_version) for h in histories]
    views = [view(h, plans[k], horizon, terms[k]) for h, k in zip(histories, keys, strict=True)] if horizon else []
    window = period or Period()
    groups = [(ALL, views), *_groups(views, stratify)] if stratify else [(ALL, views)]
    found = [_tallies(members, window) for _, members in groups]
    strata = _strata([(name, len(members)) for name, members in groups], min_cell)
    shown = {s.value: not s.suppressed for s in strata}
    results: list[Result] = []
    for d in DEFINITIONS:
        seen = [subject for tallies in found for (measure, subject) in tallies if measure == d.id]
        subjects = list(dict.fromkeys(seen)) or [""]  # in the order the families give them (the total's first)
        for subject in subjects:
            cells = [
                _result(d, subject, name, tallies.get((d.id, subject), Tally(d.id, subject)), members, window)
                for (name, members), tallies in zip(groups, found, strict=True)
            ]
            primary = [r if shown[r.stratum] and not _small(n, min_cell) else _hidden(r) for r, n in cells]
            results += _secondary(primary)
    return MeasureReport(
        period=period,
        stratify=stratify,
        as_of=horizon,
        min_cell=min_cell,
        pathways=tuple(sorted({f"{h.pathway_id} v{h.pathway_version}" for h in histories})),
        strata=strata,
        definitions=DEFINITIONS,
        results=tuple(results),
    )


def _latest(h: EpisodeHistory) -> datetime:
    moments = [h.enrolled_at, *(s.entered_at for s in h.stays), *(s.left_at for s in h.stays if s.left_at)]
    moments += [e.at for e in h.events] + [m.at for m in h.medication_lists]
    moments += [at for t in h.handoffs for at in (t.opened_at, *t.steps.values())]
    moments += [at for r in h.escalations for at in (r.raised_at, r.acknowledged_at) if at]
    return max(moments)


def _label(value: object) -> str:
    if value is None:
        return NOT_SET
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{text} (value)" if text == ALL else text  # never the total's name


def _groups(views: list[View], fact: str) -> list[tuple[str, list[View]]]:
    out: dict[str, list[View]] = {}
    for v in views:
        out.setdefault(_label(v.history.facts.get(fact)), []).append(v)
    return sorted(out.items(), key=lambda item: (item[0] == NOT_SET, item[0]))


def _tallies(views: list[View], period: Period) -> dict[tuple[str, str], Tally]:
    return {(t.measure, t.subject): t for family in _FAMILIES for t in family(views, period)}


# A cell before suppression: the result, and the episode counts suppression looks at.
_Cell = tuple[Result, list[int]]


def _result(d: Definition, subject: str, stratum: str, t: Tally, members: list[View], period: Period) -> _Cell:
    people = set(t.episodes)
    if d.unit == "rate":
        met = sum(t.met)
        numerator, denominator = met, len(t.met)
        value = round(met / denominator, 4) if denominator else None
        met_people = {e for e, ok in zip(t.episodes, t.met, strict=True) if ok}
        unmet_people = {e for e, ok in zip(t.episodes, t.met, strict=True) if not ok}
        counts = [len(people), len(met_people), len(unmet_people)]
    elif d.unit == "per-100-episodes":
        base = sum(operations.open_in(v, period) for v in members)
        numerator, denominator = len(t.episodes), base
        value = round(100 * numerator / base, 2) if base else None
        counts = [base, len(people)]
    else:
        values = sorted(x for x in t.values if x is not None)
        numerator, denominator = None, len(values)
        value = round(_quantile(values, 0.9 if d.unit.startswith("p90") else 0.5), 2) if values else None
        counts = [len(people)]
    return Result(d.id, subject, stratum, d.unit, numerator, denominator, value, False), counts


def _quantile(values: list[float], q: float) -> float:
    """The median, or (q=0.9) the nearest-rank 90th percentile: the value at rank ceil(0.9 n)."""
    return statistics.median(values) if q == 0.5 else values[math.ceil(q * len(values)) - 1]


def _small(counts: Iterable[int], min_cell: int) -> bool:
    return any(0 < n < min_cell for n in counts)


def _hidden(r: Result) -> Result:
    return Result(r.measure, r.subject, r.stratum, r.unit, None, None, None, True)


def _secondary(cells: list[Result]) -> list[Result]:
    """Suppress a second stratum when exactly one is suppressed and the total is shown (it would give it away)."""
    total, strata = cells[0], cells[1:]
    hidden = [c for c in strata if c.suppressed]
    shown = [c for c in strata if not c.suppressed]
    if total.suppressed or len(hidden) != 1 or not shown:
        return cells
    smallest = min(shown, key=lambda c: (c.denominator or 0, c.stratum))
    return [_hidden(c) if c is smallest else c for c in cells]


def _strata(groups: list[tuple[str, int]], min_cell: int) -> tuple[Stratum, ...]:
    out = [Stratum(name, n, 0 < n < min_cell) for name, n in groups]
    hidden = [s for s in out[1:] if s.suppressed]
    shown = [s for s in out[1:] if not s.suppressed]
    if not out[0].suppressed and len(hidden) == 1 and shown:
        smallest = min(shown, key=lambda s: (s.episodes or 0, s.value))
        out = [Stratum(s.value, s.episodes, True) if s is smallest else s for s in out]
    return tuple(Stratum(s.value, None, True) if s.suppressed else s for s in out)
