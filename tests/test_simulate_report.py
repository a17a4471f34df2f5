"""What a simulated cohort reports: the Sankey counts the stays, the load per role counts the escalations, stalls
name the stage and the overdue work, and two versions compare on the same people; through `carepath simulate` too."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.cli import main
from engine.language.loader import load_pathway
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.simulate import parse_model, simulate
from engine.simulate.model import for_plan
from engine.simulate.report import escalation_load, stalls, summarize
from engine.simulate.sankey import flows, sankey_svg

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "simulate"
START = datetime(2026, 1, 1, tzinfo=UTC)


def load(path: Path) -> Plan:
    result = load_pathway(path)
    assert result.spec is not None
    return compile_plan(result.spec)


@pytest.fixture(scope="module")
def detox() -> Plan:
    return load(ROOT / "pathways" / "detox-to-aftercare.yaml")


def test_the_sankey_counts_the_stays_position_by_position(detox: Plan) -> None:
    result = simulate(detox, parse_model("return_to_use: { per_week: 0.2 }", detox), 80, 365, 4, START)
    f = flows(result.histories, max_columns=50)
    paths = [[s.stage for s in h.stays] for h in result.histories]
    expected_nodes = Counter((k, stage) for path in paths for k, stage in enumerate(path))
    expected_links = Counter((k, path[k], path[k + 1]) for path in paths for k in range(len(path) - 1))
    assert f.nodes == dict(expected_nodes) and f.links == dict(expected_links)
    assert any(col >= 5 for col, _ in f.nodes)  # relapses loop back: later columns exist
    assert sum(f.nodes.values()) == sum(len(h.stays) for h in result.histories)
    cut = flows(result.histories, max_columns=3)
    assert max(col for col, _ in cut.nodes) == 2
    svg = sankey_svg(f, list(detox.stages))
    assert svg.startswith("<svg") and svg.count("<rect") == len(f.nodes) and svg.count("<path") == len(f.links)


def test_the_escalation_load_per_role_and_week_is_the_histories_escalations(detox: Plan) -> None:
    result = simulate(detox, parse_model("", detox), 60, 120, 2, START)
    load_ = escalation_load(result)
    by_role = Counter(r.role for h in result.histories for r in h.escalations)
    assert {role: sum(weeks) for role, weeks in load_.items()} == dict(by_role)
    week3 = Counter(r.role for h in result.histories for r in h.escalations if 14 <= (r.raised_at - START).days < 21)
    assert {role: weeks[2] for role, weeks in load_.items() if weeks[2]} == dict(week3)
    assert all(len(weeks) == 18 for weeks in load_.values())  # 120 days: 17 whole weeks and a part


def test_stalls_name_the_stage_and_the_overdue_work() -> None:
    plan = load(DATA / "referral-v1.yaml")
    model = parse_model(
        "arrivals: { over: 1d }\nevents:\n  intake.done: { p: 1, after: fixed(1d) }\n  handoff.accepted: { p: 0 }\n"
        "  medications.reconciled: { p: 1, after: fixed(1h) }\n",
        plan,
    )
    result = simulate(plan, model, 25, 10, 1, START)
    assert stalls(result) == [("clinic", "t0.handoff.accepted", 25)]
    summary = summarize(result)
    assert summary.ended == {"clinic": 25} and summary.handoffs["opened"] == 25


def test_two_versions_on_the_same_seed_simulate_the_same_people() -> None:
    v1, v2 = load(DATA / "referral-v1.yaml"), load(DATA / "referral-v2.yaml")
    text = "events:\n  handoff.accepted: { p: 0.7, after: lognormal(12h, 0.8) }\n  care.ended: { p: 0.5 }\n"
    model = parse_model(text, v1)
    one = simulate(v1, model, 60, 90, 9, START)
    two = simulate(v2, for_plan(model, v2), 60, 90, 9, START)
    assert [h.enrolled_at for h in one.histories] == [h.enrolled_at for h in two.histories]
    assert [h.stays[:2] for h in one.histories] == [h.stays[:2] for h in two.histories]  # same intake, same move
    accepted = [[t.steps.get("accepted") for t in h.handoffs] for h in one.histories]
    assert accepted == [[t.steps.get("accepted") for t in h.handoffs] for h in two.histories]
    # v2 adds a visit-kept step: it escalates to the supervisor where v1 has nothing to miss
    kept = [r for h in two.histories for r in h.escalations if r.item_key == "t0.handoff.visit-kept"]
    assert kept and not any(r.item_key == "t0.handoff.visit-kept" for h in one.histories for r in h.escalations)


def test_the_command_prints_compares_and_writes_one_self_contained_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "sim.html"
    v1, v2 = str(DATA / "referral-v1.yaml"), str(DATA / "referral-v2.yaml")
    assert main(["simulate", v1, "--people", "40", "--days", "60", "--seed", "3", "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("simulated sim-referral v1: 40 people, 60 days, seed 3")
    html = page.read_text()
    assert "<svg" in html and "<script" not in html
    assert all(link.startswith("data:") for link in re.findall(r'(?:src|href)="([^"]*)"', html))  # nothing fetched
    assert main(["simulate", v1, "--people", "40", "--days", "60", "--seed", "3", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["simulation"]["people"] == 40 and "against" not in body
    assert main(["simulate", v1, "--people", "40", "--days", "60", "--seed", "3", "--against", v2, "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["simulation"] == body["simulation"]  # the same seed: the same first cohort
    assert (both["against"]["version"], both["against"]["people"]) == (2, 40)
    assert main(["simulate", v1, "--people", "40", "--days", "60", "--against", v2]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["sim-referral", "v1", "sim-referral", "v2"]


def test_a_bad_model_file_prints_each_problem_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.yaml"
    model.write_text("events:\n  handoff.acepted: { p: 2 }\n")
    assert main(["simulate", str(DATA / "referral-v1.yaml"), "--model", str(model)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"{model}:2:3: error: $.events['handoff.acepted']: unknown event 'handoff.acepted' "
        "(did you mean 'handoff.accepted'?): not an event of pathway 'sim-referral'\n"
    )


def test_simulated_measures_hide_nothing_unless_asked_as_a_published_report_would(detox: Plan) -> None:
    """Simulated people are nobody: a designer sees every number. With ``min_cell=11`` the same cohort shows what
    a published report would suppress (here the follow-up rate, whose people not followed up are fewer than 11)."""
    from engine.simulate.report import cohort_measures

    result = simulate(detox, parse_model("", detox), 60, 120, 2, START)
    seen = cohort_measures(result)
    follow_up = seen.result("follow-up.30d")
    assert not any(r.suppressed for r in seen.results)
    assert follow_up.denominator and follow_up.numerator is not None
    published = cohort_measures(result, min_cell=11)
    assert published.min_cell == 11 and any(r.suppressed for r in published.results)
    missed = follow_up.denominator - follow_up.numerator
    small = [n for n in (follow_up.denominator, follow_up.numerator, missed) if 0 < n < 11]
    assert published.result("follow-up.30d").suppressed == bool(small)
