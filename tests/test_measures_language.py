"""The ``measures:`` key of the pathway language: checked like every event use, carried by the compiled plan.

The golden case ``tests/data/invalid/semantic-measures-unknown-event`` holds the error lines (file:line:col, JSON
path, did you mean); these tests hold what the plan and the warnings make of a valid key.
"""

from __future__ import annotations

from pathlib import Path

from engine.language.loader import load_pathway_text
from engine.measures import compute_measures
from engine.plan.build import compile_plan
from engine.plan.model import MeasuresPlan
from tests.measures_data import FOURTH, JAIL

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


def test_an_event_named_only_by_the_measures_is_used() -> None:
    """``screening.completed`` is declared and done_on of a task; ``session.attended`` only counts as a visit."""
    text = MINIMAL.replace(
        "  iop.completed:\n",
        "  session.attended:\n    description: A counselling session was attended.\n  iop.completed:\n",
    )
    unused = [str(d) for d in load_pathway_text(text, "p.yaml").diagnostics if "never used" in d.message]
    assert [line.split(": ", 1)[1] for line in unused] == [
        "warning: $.events['session.attended']: event 'session.attended' is declared but never used"
    ]
    with_key = load_pathway_text(text + "measures:\n  visits: [session.attended, handoff.visit-kept]\n", "p.yaml")
    assert with_key.ok and with_key.diagnostics == []


def test_no_histories_give_an_empty_report() -> None:
    report = compute_measures([], {(JAIL.pathway_id, JAIL.version): JAIL})
    assert report.as_of is None and report.strata[0].episodes == 0
    assert all(r.value is None and not r.suppressed for r in report.results if r.unit != "per-100-episodes")
