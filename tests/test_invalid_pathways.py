"""The golden table: every ``tests/data/invalid/<case>.yaml`` gives exactly the lines of ``<case>.expected``.

Cases are found by globbing, so adding a pair is enough (see ``tests/data/invalid/README.md``). Set
``CAREPATH_REGEN=1`` to rewrite the ``.expected`` files from the loader's output (then review the diff), or run
this file as a script with case names.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from engine.language.loader import load_pathway  # noqa: E402

INVALID = ROOT / "tests" / "data" / "invalid"
CASES = sorted(p.stem for p in INVALID.glob("*.yaml") if not p.name.endswith(".program.yaml"))
REGEN = os.environ.get("CAREPATH_REGEN") == "1"


def report(case: str) -> list[str]:
    """The loader's lines for ``case``, with the path as the table writes it (relative to the repo root)."""
    return [str(d) for d in load_pathway(f"tests/data/invalid/{case}.yaml").diagnostics]


def write_expected(case: str) -> None:
    lines = report(case)
    (INVALID / f"{case}.expected").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("case", CASES)
def test_case_reports_exactly_the_expected_lines(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    expected_file = INVALID / f"{case}.expected"
    if REGEN:
        write_expected(case)
    assert expected_file.exists(), f"no {expected_file.name}: run CAREPATH_REGEN=1 pytest {Path(__file__).name}"
    before = _snapshot(INVALID)
    got = report(case)
    assert _snapshot(INVALID) == before, "loading must not write anything next to the pathway"
    assert got == expected_file.read_text(encoding="utf-8").splitlines()
    assert got, "an invalid case must report at least one problem"


@pytest.mark.parametrize("case", CASES)
def test_every_position_is_inside_the_file(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for diagnostic in load_pathway(f"tests/data/invalid/{case}.yaml").diagnostics:
        lines = Path(diagnostic.file).read_bytes().split(b"\n")  # the case, or a program file it includes
        assert 1 <= diagnostic.line <= len(lines), diagnostic
        assert 1 <= diagnostic.col <= len(lines[diagnostic.line - 1]) + 1, diagnostic


def test_the_table_covers_every_layer_and_has_no_orphans() -> None:
    orphans = sorted(p.name for p in INVALID.glob("*.expected") if p.stem not in CASES)
    assert orphans == []
    layers = [c for c in CASES if not c.startswith("semantic-")]
    assert len(layers) >= 18, layers


if __name__ == "__main__":
    os.chdir(ROOT)
    for name in sys.argv[1:] or CASES:
        write_expected(name)
        print(f"wrote {name}.expected")
