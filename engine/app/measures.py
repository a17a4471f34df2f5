"""The quality measures of what the store holds: every face (``carepath measures``, a scheduled report) calls
:func:`measures`, which reads the cohort's histories (:func:`engine.store.queries.cohort.load_histories`) and the
plans of the pathway versions they ran on, then computes with the pure :func:`engine.measures.compute_measures`,
the same computation a simulated cohort gets."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from engine import store
from engine.app import inputs
from engine.app.context import App
from engine.errors import InvalidInput, NotFound, quote
from engine.language.suggest import hint
from engine.measures import MIN_CELL, MeasureReport, Period, compute_measures
from engine.plan.model import Plan
from engine.store.queries.cohort import load_histories

__all__ = ["measures"]


def measures(
    app: App,
    *,
    pathway: str | None = None,
    period: Period | None = None,
    stratify: str | None = None,
    as_of: datetime | None = None,
    min_cell: int = MIN_CELL,
) -> MeasureReport:
    """Every measure on the store's episodes (of ``pathway``, when given), judged at ``as_of`` (default: now).

    Checked first, one line each, nothing read further when refused: the pathway id and that it is registered,
    a period that ends before it starts, and (by :func:`compute_measures`) a stratifying fact no pathway declares.
    Each history is read with the plan of its own pathway version; the newest version of each pathway is there
    too, so a fact can be checked on a pathway nobody is enrolled on yet.
    """
    if pathway is not None:
        inputs.check_id("pathway id", pathway)
    if period is not None and period.start and period.end and period.end < period.start:
        raise InvalidInput("period", f"ends ({period.end}) before it starts ({period.start})")
    with Session(app.engine) as session:
        known = store.registered_pathway_ids(session)
        if pathway is not None and pathway not in known:
            shown = ", ".join(known) or "none"
            raise NotFound(f"no pathway {quote(pathway)} is registered{hint(pathway, known)} (known: {shown})")
        histories = load_histories(session, pathway=pathway)
        chosen = [pathway] if pathway is not None else known
        wanted = {(h.pathway_id, h.pathway_version) for h in histories}
        wanted |= {(p, v.version) for p in chosen if (v := store.latest_pathway_version(session, p)) is not None}
        plans: dict[tuple[str, int], Plan] = {key: app.service.version_plan(session, *key) for key in sorted(wanted)}
    now = as_of or app.clock.now()
    return compute_measures(histories, plans, period=period, stratify=stratify, as_of=now, min_cell=min_cell)
