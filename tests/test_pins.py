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
SEED = (ROOT / "pathways" / "reentry.yaml").read_text()
#: the seed's version, as registered for the running episode
V = next(int(line.split(":")[1].split("#")[0]) for line in SEED.splitlines() if line.startswith("version:"))


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
    changed = SEED.replace(f"version: {V}", f"version: {V + 1}", 1).replace("pre-release", "in-custody")
    path = _write(tmp_path, changed)
    assert main(["validate", str(path)]) == 0  # a warning does not fail validation
    out = capsys.readouterr().out
    assert (
        f"warning: $.stages: 1 running episode(s) on v{V} are in stage 'pre-release', which this version removes; "
        f"they stay on v{V} and finish there"
    ) in out
    line = next(n for n, t in enumerate(changed.splitlines(), 1) if t.startswith("stages:"))
    assert f"{path}:{line + 1}:3: warning" in out  # at the value: the first stage


def test_a_changed_file_under_the_same_version_is_flagged(
    running: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, SEED.replace("title: Prison and jail reentry", "title: Reentry"))
    main(["validate", str(path)])
    assert f"$.version: version {V} is already registered with other content" in capsys.readouterr().out


def test_the_registered_file_itself_raises_no_warning(running: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "pathways" / "reentry.yaml")]) == 0
    assert "warning" not in capsys.readouterr().out
