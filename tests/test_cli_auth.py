"""``carepath auth EPISODE request|approve|deny`` and the short-stay line of ``carepath status``, through the CLI
over in-memory ports (no Prefect): what a coordinator types and reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_authorization_store import PATHWAY

import engine.cli.episodes
import engine.cli.safety
from engine.app import App, Settings
from engine.app.inline import inline_app
from engine.cli import main
from engine.clock import ManualClock
from engine.language.loader import load_pathway_text


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("CAREPATH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAREPATH_DATABASE_URL", raising=False)
    app = inline_app(Settings.from_env(), ManualClock())
    result = load_pathway_text(PATHWAY, "auth-test.yaml")
    assert result.spec is not None
    app.service.register_pathway(result.spec, PATHWAY)
    for module in (engine.cli.safety, engine.cli.episodes):
        monkeypatch.setattr(module, "cli_app", lambda: app)
    yield app
    app.close()


def test_auth_requests_before_the_move_and_a_denial_needs_a_reason(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = app.service.enroll("auth-test", "P-TEST-1").episode_id
    assert main(["auth", ep, "request", "--to", "residential"]) == 0
    assert capsys.readouterr().out.strip() == f"{ep}: applied; stage detox (active)"
    assert main(["auth", ep, "deny"]) == 1
    assert "missing field 'reason'" in capsys.readouterr().err
    assert main(["auth", ep, "deny", "--reason", "not medically necessary", "--id", "auth-1"]) == 0
    assert main(["auth", ep, "deny", "--reason", "not medically necessary", "--id", "auth-1"]) == 0
    assert "duplicate event: nothing changed" in capsys.readouterr().out
    assert main(["auth", ep, "request"]) == 0
    assert main(["auth", ep, "approve", "--to", "residential"]) == 0


def test_status_shows_a_stay_shorter_than_expected(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    ep = app.service.enroll("auth-test", "P-TEST-1").episode_id
    app.clock.advance(timedelta(hours=30))  # type: ignore[attr-defined]
    assert main(["event", ep, "detox.completed", "--data", "insurance=self-pay"]) == 0
    capsys.readouterr()
    assert main(["status", ep]) == 0
    assert "short stay: detox 30h (expected at least 3d)" in capsys.readouterr().out
