"""The ``measures:`` key of the pathway language: checked like every event use, carried by the compiled plan.

The golden case ``tests/data/invalid/semantic-measures-unknown-event`` holds the error lines (file:line:col, JSON
path, did you mean); these tests hold what the plan and the warnings make of a valid key.
"""

from __future__ import annotations

from pathlib import Path

from measures_data import FOURTH, JAIL

from engine.language.loader import load_pathway_text
from engine.measures import compute_measures
from engine.plan.build import compile_plan
from engine.plan.model import MeasuresPlan

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = (ROOT / "tests" / "data" / "valid" / "minimal.yaml").read_text(encoding="utf-8")


def test_the_plan_carries_the_measures_vocabulary() -> None:
    assert JAIL.measures == MeasuresPlan(
        start="intake.completed",
        visits=("session.attended",),
        release="custody.released",
        contacts=("peer.contacted",),
        moud_fills=("prescription.filled",),
        moud_events=("moud.confirmed",),
    )
    assert (FOURTH.measures.start, FOURTH.measures.release, FOURTH.measures.visits) == (None, None, ("visit.kept",))


def test_a_pathway_without_the_key_compiles_to_an_empty_vocabulary() -> None:
    loaded = load_pathway_text(MINIMAL, "minimal.yaml")
    assert loaded.ok and loaded.spec is not None
    assert compile_plan(loaded.spec).measures == MeasuresPlan()


def test_an_event_only_the_measures_name_must_be_accepted_in_every_stage() -> None:
    """``session.attended`` is declared but nothing ends on it: unused; named by the measures, it is used but every
    episode would refuse it (a warning says how to fix it); ``record_anywhere`` makes it accepted, and clean."""

    def warnings(text: str) -> list[str]:
        return [f"{d.json_path}: {d.message}" for d in load_pathway_text(text, "p.yaml").diagnostics]

    event = "  session.attended:\n    description: A counselling session was attended.\n"
    text = MINIMAL.replace("  iop.completed:\n", event + "  iop.completed:\n")
    assert warnings(text) == ["$.events['session.attended']: event 'session.attended' is declared but never used"]
    counted = text + "measures:\n  visits: [session.attended, handoff.visit-kept]\n"
    assert warnings(counted) == [
        "$.measures.visits[0]: no move or work ends on 'session.attended', so episodes refuse it and the measures "
        "never see it: give the event record_anywhere: true"
    ]
    fixed = counted.replace(event, event + "    record_anywhere: true\n")
    assert load_pathway_text(fixed, "p.yaml").ok and warnings(fixed) == []


def test_no_histories_give_an_empty_report() -> None:
    report = compute_measures([], {(JAIL.pathway_id, JAIL.version): JAIL})
    assert report.as_of is None and report.strata[0].episodes == 0
    assert all(r.value is None and not r.suppressed for r in report.results if r.unit != "per-100-episodes")
