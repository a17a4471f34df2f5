"""One episode as the measures read it (:class:`View`), and what a measure family hands back (:class:`Tally`).

A view joins an :class:`~engine.episode.history.EpisodeHistory` with its compiled plan once: the plan's
``measures:`` vocabulary says which events are kept visits, contacts after release and MOUD evidence; its critical
medications of class MOUD (names and aliases, any case) say which medication-list lines are MOUD; its stages' ASAM
levels say which stays are high-intensity care. Families then only compare moments.

Judging a window: a unit (a discharge, a release...) counts only once its window has closed, by the data's horizon
(``as_of``, the latest moment in the cohort unless given) or by the episode's end (nothing is recorded after it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache

from engine.episode.history import EpisodeHistory
from engine.plan.model import Plan

__all__ = [
    "HIGH_INTENSITY_LEVELS",
    "Tally",
    "View",
    "day_end",
    "moud_terms",
    "view",
]

#: Stays after which follow-up is measured: withdrawal management (3rd edition: 1-WM, 2-WM, 3.2-WM, 3.7-WM, 4-WM;
#: the 4th edition folds it into 1.7 and 2.7, and 3.7 and 4.0), residential (3.1, 3.3, 3.5, 3.7) and inpatient
#: (4, 4.0). Codes shared by both editions mean the same class, so the edition need not be known.
HIGH_INTENSITY_LEVELS = frozenset(
    {"1-WM", "2-WM", "3.2-WM", "3.7-WM", "4-WM", "1.7", "2.7", "3.1", "3.3", "3.5", "3.7", "4", "4.0"}
)


@lru_cache(maxsize=8192)
def _words(text: str) -> str:
    """`` suboxone 8 mg film ``: lowercase words, padded so a term matches whole words only."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.casefold())) + " "


def moud_terms(plan: Plan) -> tuple[str, ...]:
    """The plan's MOUD names and aliases (critical medications of class MOUD, any case), as padded word runs."""
    out: list[str] = []
    for med in plan.critical_medications:
        if str(med.get("class", "")).casefold() == "moud":
            out += [_words(name) for name in (med["name"], *med.get("aliases", ())) if _words(name).strip()]
    return tuple(out)


def day_end(moment: datetime, days: int) -> datetime:
    """The first moment after the ``days``-th day after ``moment``'s (UTC) day: when a window "through day N"
    closes. Keeps ``moment``'s time zone (UTC as the histories give them)."""
    return datetime.combine(moment.date() + timedelta(days=days + 1), time(), tzinfo=moment.tzinfo)


@dataclass(frozen=True)
class View:
    """An episode with the moments the measures compare, each sorted."""

    history: EpisodeHistory
    plan: Plan
    #: when the episode ended (entered a terminal stage); ``None`` while active
    end: datetime | None
    #: the data's horizon: nothing later is known for any episode
    as_of: datetime
    visits: tuple[datetime, ...]
    contacts: tuple[datetime, ...]
    fills: tuple[datetime, ...]
    #: MOUD dispensed, other MOUD events, and lists (either side) holding an MOUD
    moud: tuple[datetime, ...]
    #: MOUD on a receiving list, dispensed, or another MOUD event: evidence on the other side of a transition
    moud_received: tuple[datetime, ...]
    #: the stage visits whose sending list holds an MOUD (the transitions MOUD continuity follows)
    moud_sent: frozenset[int]

    @property
    def id(self) -> str:
        return self.history.id

    def judged(self, window_closes: datetime) -> bool:
        """Whether a window closing at ``window_closes`` can be judged: closed by the horizon, or the episode ended."""
        return self.end is not None or window_closes <= self.as_of

    def first(self, name: str | None) -> datetime | None:
        return next((e.at for e in self.history.events if e.name == name), None) if name else None


def _times(history: EpisodeHistory, names: tuple[str, ...]) -> list[datetime]:
    wanted = {n for n in names if not n.startswith("handoff.")}  # handoff steps are read from the tracks
    return [e.at for e in history.events if e.name in wanted]


def view(history: EpisodeHistory, plan: Plan, as_of: datetime, terms: tuple[str, ...]) -> View:
    """``terms``: :func:`moud_terms` of ``plan`` (computed once per plan by the caller)."""
    vocab = plan.measures
    kept = [h.steps["visit-kept"] for h in history.handoffs if "visit-kept" in h.steps]
    visits = sorted([*kept, *_times(history, vocab.visits)])
    fills = sorted(_times(history, vocab.moud_fills))
    events = _times(history, vocab.moud_events)
    lists = [m for m in history.medication_lists if any(t in _words(n) for n in m.names for t in terms)]
    end = history.stays[-1].entered_at if history.status != "active" and history.stays else None
    return View(
        history=history,
        plan=plan,
        end=end,
        as_of=as_of,
        visits=tuple(visits),
        contacts=tuple(sorted([*_times(history, vocab.contacts), *visits])),
        fills=tuple(fills),
        moud=tuple(sorted([*fills, *events, *(m.at for m in lists)])),
        moud_received=tuple(sorted([*fills, *events, *(m.at for m in lists if m.side == "receiving")])),
        moud_sent=frozenset(m.visit for m in lists if m.side == "sending"),
    )


@dataclass
class Tally:
    """What a family found for one measure and subject in one group of episodes: per thing counted, its episode,
    whether it was met (a rate) and its value (a median or percentile). Three flat lists, not an object per
    thing: a cohort of 10,000 makes hundreds of thousands, and objects would keep the garbage collector busy."""

    measure: str
    subject: str = ""
    episodes: list[str] = field(default_factory=list)
    met: list[bool] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)

    def add(self, episode: str, met: bool = False, value: float | None = None) -> None:
        self.episodes.append(episode)
        self.met.append(met)
        self.values.append(value)
