"""`carepath validate` warns about episodes already running on a pathway that a file change would affect."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import Settings
from engine.app.inline import inline_app
from engine.app.pathways import register_pathways
from engine.cli import main
from engine.clock import ManualClock

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder whose store has one active reentry episode in stage pre-release."""
    home = tmp_path / "home"
    monkeypatch.setenv("CAREPATH_HOME", str(home))
    monkeypatch.delenv("CAREPATH_DATABASE_URL", raising=False)
    app = inline_app(Settings.from_env(), ManualClock())
    register_pathways(app, ROOT / "pathways")
    app.service.enroll("reentry", "P-PIN-001")
    app.close()
    return home


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reentry.yaml"
    path.write_text(text)
    return path


def test_a_new_version_that_drops_a_running_stage_is_flagged(
    running: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "pathways" / "reentry.yaml").read_text()
    changed = text.replace("version: 1", "version: 2", 1).replace("pre-release", "in-custody")
    path = _write(tmp_path, changed)
    assert main(["validate", str(path)]) == 0  # a warning does not fail validation
    out = capsys.readouterr().out
    assert (
        "warning: $.stages: 1 running episode(s) on v1 are in stage 'pre-release', which this version removes; "
        "they stay on v1 and finish there"
    ) in out
    line = next(n for n, t in enumerate(changed.splitlines(), 1) if t.startswith("stages:"))
    assert f"{path}:{line + 1}:3: warning" in out  # at the value: the first stage


def test_a_changed_file_under_the_same_version_is_flagged(
    running: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "pathways" / "reentry.yaml").read_text()
    path = _write(tmp_path, text.replace("title: Prison and jail reentry", "title: Reentry"))
    main(["validate", str(path)])
    assert "$.version: version 1 is already registered with other content" in capsys.readouterr().out


def test_the_registered_file_itself_raises_no_warning(running: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "pathways" / "reentry.yaml")]) == 0
    assert "warning" not in capsys.readouterr().out
