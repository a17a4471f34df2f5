"""Meaning checks for the medication rules of moves and stages, and for parallel check-in tracks.

- every name in ``medication_changes`` and ``requires_medication`` is a medication the pathway declares under
  ``medications.critical`` (did you mean); a change does not stop and start the same medication, nor stop one its
  own move requires;
- a move that plans changes or requires a medication reconciles (``reconcile:``), or nothing would compare lists;
- parallel check-in tracks of one stage end on different events, or one contact would meet whichever opened first.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.model import PathwaySpec
from engine.language.positions import Path
from engine.language.suggest import unknown

__all__ = ["check_check_in_tracks", "check_medication_rules"]


def _names(spec: PathwaySpec) -> Iterator[tuple[Path, str]]:
    for i, stage in enumerate(spec.stages):
        for j, name in enumerate(stage.requires_medication):
            yield ("stages", i, "requires_medication", j), name
    for i, t in enumerate(spec.transitions):
        for j, change in enumerate(t.medication_changes):
            for key in ("stop", "start"):
                if (name := getattr(change, key)) is not None:
                    yield ("transitions", i, "medication_changes", j, key), name
        for j, name in enumerate(t.requires_medication):
            yield ("transitions", i, "requires_medication", j), name


def check_medication_rules(spec: PathwaySpec) -> Iterator[Finding]:
    declared = {m.name for m in spec.medications.critical} if spec.medications else set()
    for path, name in _names(spec):
        if name not in declared:
            yield Finding(path, unknown("medication", name, declared) + ("" if declared else " (declare medications)"))
    for i, t in enumerate(spec.transitions):
        at: Path = ("transitions", i)
        if (t.medication_changes or t.requires_medication) and t.reconcile is None:
            key = "medication_changes" if t.medication_changes else "requires_medication"
            yield Finding((*at, key), "this move compares no medication lists: add reconcile to it")
        for j, change in enumerate(t.medication_changes):
            if change.stop is not None and change.stop == change.start:
                yield Finding((*at, "medication_changes", j, "start"), f"'{change.start}' is both stopped and started")
            elif change.stop is not None and change.stop in t.requires_medication:
                yield Finding(
                    (*at, "medication_changes", j, "stop"), f"'{change.stop}' is stopped but this move requires it"
                )


def check_check_in_tracks(spec: PathwaySpec) -> Iterator[Finding]:
    for i, stage in enumerate(spec.stages):
        seen: dict[str, str] = {}  # event -> the track that ends on it
        for j, series in enumerate(stage.check_ins):
            track = series.track or ""
            other = seen.setdefault(series.done_on, track)
            if other != track:
                names = " and ".join(f"'{n}'" if n else "the unnamed track" for n in (other, track))
                yield Finding(
                    ("stages", i, "check_ins", j, "done_on"),
                    f"check-in tracks {names} both end on '{series.done_on}'; give each track its own event",
                )
