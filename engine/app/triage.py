"""Who is falling through the cracks first: the risk windows and the worklist's order. Pure: plain values in,
plain values out, no store, no clock (``now`` is passed in), so every rule tests in microseconds.

The order (:func:`rank_key`), most urgent first:

1. **critical**: an unacknowledged critical-severity escalation (an omitted MOUD at a transition, see
   ``medications: critical:``) or an unintentional critical medication discrepancy: overdose risk now;
2. overdue work **in a risk window** (:func:`risk_window`): overdue work matters most when the person is most
   likely to overdose;
3. overdue work outside one;
4. the rest (an escalation nobody acknowledged, whose work is no longer overdue);

and within a tier, the longest-waiting first (the oldest overdue deadline, else the oldest open escalation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "RISK_WINDOW",
    "Risk",
    "Stay",
    "Urgency",
    "is_custody",
    "is_high_intensity",
    "is_return_to_use",
    "rank_key",
    "risk_window",
]

#: How long a risk window lasts. Overdose risk is highest in the first two weeks after release from custody
#: (Binswanger, NEJM 2007), and after detox or residential care tolerance has fallen the same way; the same
#: two weeks serve after a reported return to use.
RISK_WINDOW = timedelta(days=14)

_NEVER = datetime.max.replace(tzinfo=UTC)
_CUSTODY_WORDS = ("custody", "jail", "prison", "incarcerat", "pre-release", "detention")
#: The words of an event name marking a return to use: the language has no marker for one, so the name says it.
_RETURN_TO_USE = frozenset({"relapse", "relapsed", "return-to-use", "returned-to-use"})
#: ASAM levels of high-intensity care, both editions: residential and inpatient (3.x, 4) and withdrawal
#: management (``-WM`` in the 3rd edition); the FUI measure's "inpatient, residential, withdrawal management".
_HIGH_INTENSITY = re.compile(r"^(?:[34](?:\.\d+)?)(?:-WM)?$|-WM$", re.IGNORECASE)


@dataclass(frozen=True)
class Stay:
    """A stay in a stage as the risk rules see it: the stage's id, name and ASAM level, and when it ended."""

    stage: str
    name: str
    level: str | None
    left_at: datetime | None


@dataclass(frozen=True)
class Risk:
    """Why a person is in a risk window (one line for people) and until when."""

    reason: str
    until: datetime


def is_custody(stay: Stay) -> bool:
    """A stay in custody. The pathway language has no marker for custody, so the stage's id or name says it
    (``custody``, ``jail``, ``prison``, ``incarcerated``, ``pre-release``, ``detention``); a custody stage has no
    ASAM level (it is not a level of care)."""
    text = f"{stay.stage} {stay.name}".lower()
    return stay.level is None and any(word in text for word in _CUSTODY_WORDS)


def is_high_intensity(stay: Stay) -> bool:
    """A stay in withdrawal management, residential or inpatient care, by the stage's ASAM level (3.x, 4, or any
    ``-WM`` level): leaving one, tolerance is low while access to care drops."""
    return stay.level is not None and bool(_HIGH_INTENSITY.search(stay.level.strip()))


def is_return_to_use(event_name: str) -> bool:
    """An event reporting a return to use: a dot-separated word of its name is ``relapse``, ``relapsed``,
    ``return-to-use`` or ``returned-to-use`` (a naming rule, since the language declares no such marker; the seed
    pathway's is ``relapse.reported``). Whole words only, so ``relapse-prevention.attended`` is not one."""
    return any(word in _RETURN_TO_USE for word in event_name.lower().split("."))


def risk_window(stays: Sequence[Stay], events: Iterable[tuple[str, datetime]], now: datetime) -> Risk | None:
    """The risk window the person is in now, if any: within :data:`RISK_WINDOW` of leaving custody or a
    high-intensity stage, or of an event reporting a return to use. The most recent cause wins."""
    causes: list[tuple[datetime, str]] = []
    for stay in stays:
        if stay.left_at is None:
            continue
        if is_custody(stay):
            causes.append((stay.left_at, f"released from {stay.name}"))
        elif is_high_intensity(stay):
            causes.append((stay.left_at, f"left {stay.name} (ASAM {stay.level})"))
    causes += [(at, f"return to use reported ({name})") for name, at in events if is_return_to_use(name)]
    current = [(at, why) for at, why in causes if at <= now < at + RISK_WINDOW]
    if not current:
        return None
    at, why = max(current, key=lambda c: c[0])
    return Risk(why, at + RISK_WINDOW)


@dataclass(frozen=True)
class Urgency:
    """What a row's rank depends on: critical or not, its risk window, its oldest overdue deadline and its oldest
    open escalation."""

    critical: bool
    risk: Risk | None
    oldest_overdue: datetime | None
    oldest_escalation: datetime | None


def rank_key(u: Urgency, tiebreak: str = "") -> tuple[int, datetime, str]:
    """The sort key of a row (smaller first): tier, then how long it has waited, then ``tiebreak`` (an id).
    Times are timezone-aware (UTC)."""
    if u.critical:
        tier = 0
    elif u.oldest_overdue is not None:
        tier = 1 if u.risk is not None else 2
    else:
        tier = 3
    waiting = [t for t in (u.oldest_overdue, u.oldest_escalation) if t is not None]
    return tier, min(waiting) if waiting else _NEVER, tiebreak
