"""What a pathway says about a transition's medications, applied to a reconciliation's findings. Pure.

Two rules on top of :func:`engine.episode.domain.reconcile.compare`:

- a *planned change* (``medication_changes: [{stop: methadone, start: buprenorphine, reason: ...}]``) records the
  matching discrepancies as ``intentional-documented`` with the pathway's reason, marked by :data:`PATHWAY`: the
  omission of ``stop`` (only once ``start``, when named, is on the receiving list: a switch half made is still a
  dropped MOUD) and the unexplained ``start``;
- a *required medication* (``requires_medication: [buprenorphine]``) missing from the receiving list is a
  critical omission, whatever the sending list says, and no planned change can document it away.

Applied after :func:`~engine.episode.domain.reconcile.supersede`, so a re-sent list is judged afresh: a mark the
pathway made before is dropped first, and made again only if it still holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from engine.episode.domain.reconcile import INTENTIONAL, KINDS, RESOLVED, Discrepancy, Medication, compare

__all__ = ["PATHWAY", "PlannedChange", "apply_pathway"]

#: ``marked_by`` of a discrepancy the pathway documented (a clinician's mark names the clinician).
PATHWAY = "pathway"


class PlannedChange(Protocol):
    """A ``medication_changes`` entry, as the plan holds it."""

    @property
    def stop(self) -> str | None: ...
    @property
    def start(self) -> str | None: ...
    @property
    def reason(self) -> str: ...


Critical = Iterable[Mapping[str, Any] | Any]


def _missing(name: str, receiving: Sequence[Medication], critical: Sequence[Any]) -> Discrepancy | None:
    """The omission ``name`` would be were it on the sending list: None when the receiving list holds it."""
    return next((d for d in compare([Medication(name=name)], receiving, critical) if d.kind == "omission"), None)


def _base(key: str) -> str:
    return key.split("#", 1)[0]


def _identity(name: str, critical: Sequence[Any]) -> str:
    """How discrepancy keys name ``name`` (``methadone`` for "Methadone 80 mg", the generic for a brand)."""
    found = _missing(name, [], critical)
    assert found is not None  # nothing received: always an omission
    return _base(found.key).split(":", 1)[1]


def apply_pathway(
    findings: Iterable[Discrepancy],
    receiving: Sequence[Medication],
    critical: Critical,
    changes: Iterable[PlannedChange] = (),
    required: Iterable[str] = (),
) -> list[Discrepancy]:
    """``findings`` with the pathway's planned changes documented and its required medications enforced."""
    crit = list(critical)
    unmark: dict[str, Any] = {"status": "unintentional", "reason": None, "marked_by": None}
    current = [
        d.model_copy(update=unmark) if d.marked_by == PATHWAY and d.status == INTENTIONAL else d for d in findings
    ]
    planned: dict[str, str] = {}
    for change in changes:
        if change.stop and (change.start is None or _missing(change.start, receiving, crit) is None):
            planned[f"omission:{_identity(change.stop, crit)}"] = change.reason
        if change.start:
            planned[f"new-without-reason:{_identity(change.start, crit)}"] = change.reason
    enforced = {m.key: m for name in required if (m := _missing(name, receiving, crit)) is not None}
    result: list[Discrepancy] = []
    for d in current:
        base = _base(d.key)
        if d.status != RESOLVED and base in enforced:
            d = d if d.critical else d.model_copy(update={"critical": True})
        elif d.status != RESOLVED and base in planned and d.is_error:
            d = d.model_copy(update={"status": INTENTIONAL, "reason": planned[base], "marked_by": PATHWAY})
        result.append(d)
    present = {_base(d.key) for d in result if d.status != RESOLVED}
    for key, miss in enforced.items():
        if key not in present:
            what = miss.medication_class or "critical medication"
            detail = f"required at this move ({what}), missing from the receiving list"
            result.append(miss.model_copy(update={"detail": detail, "critical": True}))
    order = {kind: n for n, kind in enumerate(KINDS)}
    return sorted(result, key=lambda d: (not d.critical, order[d.kind], d.medication.casefold(), d.key))
