"""``carepath measures`` on a store holding a small cohort (run through the whole service, on SQLite and
PostgreSQL): the report as a table, JSON, CSV and an HTML page, a period that leaves the cohort out, strata too small
to print. The cohort: twelve people referred to detox at hour 2, accepted 1, 1, 2, 2, ... 6, 6 hours later, so the
median time to acceptance is 3.5 hours over 12 handoffs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cohort_replay import Consent, Enroll, Person, Record, Script, through_service
from store_fixtures import BACKENDS, migrated_database_url
from test_history import PATHWAY, T0, h

import engine.cli.episodes
from engine.app import App, Settings
from engine.app.inline import RecordingNotifier, inline_app
from engine.app.measures import measures
from engine.cli import main
from engine.clock import ManualClock
from engine.errors import CarepathError
from engine.language.loader import load_pathway_text
from engine.measures import Period

DELAYS = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
COHORT = Script(
    pathway_id="history-test",
    until=h(30),
    people=tuple(
        Person(
            f"P-SIM-{n + 1:06d}",
            (
                Enroll(h(0), {"insurance": "medicaid" if n % 2 else "commercial"}),
                Consent(h(0.5)),
                Record(h(2), "intake.completed"),
                Record(h(2 + delay), "handoff.accepted"),
            ),
        )
        for n, delay in enumerate(DELAYS)
    ),
)
ACCEPTED = ("handoffs.accepted-hours", "Detox unit")


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    with migrated_database_url(request.param, tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(T0 - timedelta(hours=1)), notifier=RecordingNotifier({}))
        result = load_pathway_text(PATHWAY, "history-test.yaml")
        assert result.ok and result.spec is not None, result.diagnostics
        app.service.register_pathway(result.spec, PATHWAY)
        assert through_service(app, COHORT).refused == []
        monkeypatch.setattr(engine.cli.episodes, "cli_app", lambda: app)
        yield app
        app.close()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "P-SIM" not in out and "ep-" not in out, "a report names no person and no episode"
    return out


def test_measures_prints_the_report_in_each_format(
    app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = run(["measures", "--pathway", "history-test"], capsys)
    assert "Pathways: history-test" in table
    line = next(x for x in table.splitlines() if "Median time from opening to acceptance: Detox unit" in x)
    assert "3.5 h (n=12)" in line

    found = json.loads(run(["measures", "--json"], capsys))
    cell = next(r for r in found["results"] if (r["measure"], r["subject"], r["stratum"]) == (*ACCEPTED, "all"))
    assert (cell["value"], cell["denominator"], cell["suppressed"]) == (3.5, 12, False)

    rows = list(csv.DictReader(io.StringIO(run(["measures", "--csv"], capsys))))
    row = next(r for r in rows if (r["measure"], r["subject"], r["stratum"]) == (*ACCEPTED, "all"))
    assert (row["value"], row["denominator"]) == ("3.5", "12")

    page = tmp_path / "report.html"
    assert run(["measures", "--html", str(page)], capsys).strip() == f"wrote {page}"
    html = page.read_text(encoding="utf-8")
    assert html.lower().startswith("<!doctype html") and "Median time from opening to acceptance" in html
    assert "P-SIM" not in html and "ep-" not in html


def test_a_period_and_strata_narrow_the_report(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    # every handoff opened on T0's day: a period from the next day counts none of them
    later = (T0 + timedelta(days=1)).date().isoformat()
    found = json.loads(run(["measures", "--json", "--from", later], capsys))
    handoffs = [r for r in found["results"] if r["measure"].startswith("handoffs.")]
    assert all(r["value"] is None and not r["denominator"] for r in handoffs)
    assert found["period"]["start"] == later

    # six people each side: both strata are under 11, so neither is printed
    by = json.loads(run(["measures", "--json", "--by", "insurance"], capsys))
    strata = {s["value"]: s for s in by["strata"]}
    assert strata["all"]["episodes"] == 12
    assert strata["medicaid"]["suppressed"] and strata["commercial"]["suppressed"]
    cells = [r for r in by["results"] if (r["measure"], r["subject"]) == ACCEPTED and r["stratum"] != "all"]
    assert cells and all(r["suppressed"] and r["value"] is None for r in cells)


def test_the_use_case_refuses_what_it_cannot_answer(app: App) -> None:
    with pytest.raises(CarepathError, match=r"no pathway 'history-tset' is registered \(did you mean 'history-test'"):
        measures(app, pathway="history-tset")
    with pytest.raises(CarepathError, match=r"cannot stratify by 'insurence'.*did you mean 'insurance'"):
        measures(app, stratify="insurence")
    with pytest.raises(CarepathError, match=r"period: ends \(2026-03-01\) before it starts \(2026-03-02\)"):
        measures(app, period=Period(T0.date(), (T0 - timedelta(days=1)).date()))
