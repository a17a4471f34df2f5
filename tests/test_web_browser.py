"""The worklist in a real browser (Playwright driving Debian's ``chromium``, headless): a coordinator logs in,
finds the critical episode at the top, acknowledges its escalation and records a contact, and ``carepath status``
shows both. Screenshots of the worklist and the episode page are taken on every run; with
``CAREPATH_SCREENSHOTS=docs`` they replace the README's in ``docs/`` (synthetic data only).

Skipped, saying why, when no chromium can be found or installed (``apt-get install -y chromium`` as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_fixtures import Site, build_site

from engine.cli import main

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Where the screenshots go: ``docs/`` when asked (to refresh the README's), else the test's own folder.
SHOTS_TO_DOCS = os.environ.get("CAREPATH_SCREENSHOTS") == "docs"


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when running as root and it is missing; None when impossible."""
    if shutil.which("chromium") or not shutil.which("apt-get") or os.geteuid() != 0:
        return shutil.which("chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "chromium"],
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "chromium"],
    ):
        try:
            done = subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if command[1] == "install" and done.returncode == 0:
            break
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    executable = _install_chromium()
    if executable is None:
        pytest.skip("no chromium: install Debian's chromium (apt-get install -y chromium) to run the browser test")
    with playwright_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        except playwright_api.Error as exc:
            pytest.skip(f"chromium at {executable} does not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from build_site(tmp_path)


def test_a_coordinator_acknowledges_the_critical_episode_and_records_a_contact(
    chromium: object,
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    shots = DOCS if SHOTS_TO_DOCS else tmp_path
    crit = site.episodes["crit"]
    context = chromium.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{site.url}/worklist")
    assert page.url.endswith("/login")
    page.fill("input[name=token]", site.tokens["coordinator"])
    page.click("form[action='/login'] button")
    page.wait_for_url("**/worklist")
    rows = page.locator("table.worklist tbody tr")
    assert rows.count() == 3
    top = rows.nth(0)
    assert top.get_attribute("id") == f"row-{crit}"
    assert "CRITICAL" in top.inner_text() and "omission: buprenorphine" in top.inner_text()
    cookie = next(c for c in context.cookies() if c["name"] == "carepath_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "worklist.png"), full_page=True)

    top.locator("button", has_text="Acknowledge #1").click()
    page.wait_for_url("**/worklist?done=ack")
    assert "Escalation acknowledged." in page.inner_text("main")
    page.locator(f"#row-{crit} input[name=note]").fill("Phoned the person; MOUD restarted by the clinic today")
    page.locator(f"#row-{crit} button", has_text="Record contact").click()
    page.wait_for_url("**/worklist?done=contact")

    page.click(f"a[href='/episodes/{crit}']")
    page.wait_for_url(f"**/episodes/{crit}")
    body = page.inner_text("main")
    assert "acknowledged by desk-anna" in body and "MOUD restarted by the clinic today" in body
    page.screenshot(path=str(shots / "episode.png"), full_page=True)
    context.close()

    for name, value in site.env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["status", crit]) == 0
    status = capsys.readouterr().out
    assert "(acknowledged by desk-anna)" in status
    assert "desk-anna  contact.recorded" in status and "reason: Phoned the person; MOUD restarted" in status
