"""Issue #9, part A: named ladders, owners of generated work, calendar months and numeric bounds, ASAM levels.

Each feature also has golden pairs in ``tests/data/invalid`` (``semantic-asam-*``, ``semantic-ladder-*``, ...) and
valid files in ``tests/data/valid``; these tests cover what a golden line cannot: the plan and the episode.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.loader import load_pathway, load_pathway_text

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "data" / "valid"
MINIMAL = (VALID / "minimal.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(p.name for p in VALID.glob("*.yaml")))
def test_every_valid_fixture_validates_without_a_warning(name: str) -> None:
    result = load_pathway(VALID / name)
    assert result.ok and result.diagnostics == [], [str(d) for d in result.diagnostics]


def test_asam_levels_are_those_of_the_edition() -> None:
    third = MINIMAL.replace("level: 3.7-WM", "level: OTP")
    assert load_pathway_text(third).ok
    fourth = MINIMAL.replace("asam_edition: 3", "asam_edition: 4").replace("level: 3.7-WM", "level: 1-WM")
    (problem,) = load_pathway_text(fourth).diagnostics
    assert problem.message.startswith("'1-WM' is not an ASAM level of edition 4")
