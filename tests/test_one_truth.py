"""Issue #13's acceptance: the measures of a simulated cohort equal the measures of the same cohort run through
the service and the store, each computed by its own production path (``carepath simulate``'s
:func:`engine.simulate.report.cohort_measures` over the simulator's histories; ``carepath measures``'s
:func:`engine.app.measures.measures` over the store), on the shipped pathways, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cohort_replay import from_simulation, through_service
from store_fixtures import BACKENDS, migrated_database_url

from engine.app import App, Settings
from engine.app.inline import RecordingNotifier, inline_app
from engine.app.measures import measures
from engine.app.pathways import register_pathways
from engine.clock import ManualClock
from engine.language.loader import load_pathway
from engine.plan.build import compile_plan
from engine.simulate import parse_model, simulate
from engine.simulate.report import cohort_measures

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
#: A model that makes every family of measures count something: refusals stay rare, consents sometimes missing,
#: MOUD sometimes dropped at a transition, escalations acknowledged.
MODEL = """
consent: { p: 0.85 }
medications: { on_moud: 0.9, receiving_omits: 0.15 }
acknowledge: { p: 0.8, after: lognormal(3h, 0.7) }
arrivals: { over: 10d }
"""


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with migrated_database_url(request.param, tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(START - timedelta(hours=1)), notifier=RecordingNotifier({}))
        register_pathways(app, ROOT / "pathways")
        yield app
        app.close()


@pytest.mark.parametrize("pathway", ["reentry", "detox-to-aftercare"])
def test_a_simulated_cohort_and_the_same_cohort_in_the_store_have_the_same_measures(app: App, pathway: str) -> None:
    spec = load_pathway(ROOT / "pathways" / f"{pathway}.yaml").spec
    assert spec is not None
    plan = compile_plan(spec)
    result = simulate(plan, parse_model(MODEL, plan), 15, 60, 11, START)
    replayed = through_service(app, from_simulation(result.script, result.end))
    assert replayed.refused == []

    simulated = cohort_measures(result)  # what `carepath simulate` reports (nothing suppressed: nobody is real)
    stored = measures(app, pathway=pathway, as_of=result.end, min_cell=1)  # what `carepath measures` reports
    assert stored.results == simulated.results
    counted = {r.measure for r in stored.results if r.denominator}
    # every family but reentry's own had something to count (reentry's too, on reentry)
    assert {
        "initiation",
        "engagement",
        "moud.transitions",
        "handoffs.loop-closed",
        "escalations.acknowledged",
    } <= counted
    assert {"discrepancies.critical", "stays.median-days"} <= counted, sorted(counted)
    assert ("reentry.contact-72h" in counted) == (pathway == "reentry")
