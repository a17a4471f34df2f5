"""The behaviour model file: the documented form parses (one-line mappings with commas inside a delay included), the
delays draw what they say, and every mistake is one line with the file, line, column and path, never a traceback."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from engine.language.loader import load_pathway
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.simulate import ModelError, parse_model
from engine.simulate.model import Delay, parse_delay

DATA = Path(__file__).resolve().parent / "data" / "simulate"


@pytest.fixture(scope="module")
def plan() -> Plan:
    result = load_pathway(DATA / "referral-v1.yaml")
    assert result.spec is not None
    return compile_plan(result.spec)


def test_the_documented_example_parses(plan: Plan) -> None:
    text = """
events:
  handoff.accepted: { p: 0.8, after: lognormal(18h, 0.6) }   # median 18h, sigma 0.6
  care.ended: { p: 0.7, after: uniform(1d, 5d) }
  intake.done: { p: 0.85, after: exponential(8h), data: { risk: { high: 0.2, low: 0.8 } } }
consent: { p: 0.9 }
enrollment_facts: { insurance: { medicaid: 0.7, commercial: 0.3 } }
acknowledge: { p: 0.9, after: lognormal(2h, 0.8) }
medications: { on_moud: 0.6, receiving_omits: 0.2 }
arrivals: { over: 14d }
work: { p: 0.95 }
"""
    m = parse_model(text, plan)
    assert m.events["handoff.accepted"].after == Delay("lognormal", 18 * 3600, 0.6)
    assert m.events["care.ended"].after == Delay("uniform", 86400, 5 * 86400)
    assert m.events["intake.done"].data == {"risk": {"high": 0.2, "low": 0.8}}
    assert (m.consent, m.on_moud, m.receiving_omits, m.work_p) == (0.9, 0.6, 0.2, 0.95)
    assert m.acknowledge.after == Delay("lognormal", 2 * 3600, 0.8)
    assert m.enrollment_facts == {"insurance": {"medicaid": 0.7, "commercial": 0.3}}
    assert m.arrivals_over == timedelta(days=14)
    assert m.relapse_event is None  # the pathway has no relapse.reported, so no return to use by default


def test_an_empty_model_is_the_defaults(plan: Plan) -> None:
    m = parse_model("", plan)
    assert (m.events, m.consent, m.work_p, m.arrivals_over) == ({}, 0.9, 0.9, timedelta(days=30))


def test_delays_draw_what_they_say() -> None:
    rng = random.Random(1)
    draws = [parse_delay("uniform(1d, 3d)").draw(rng) for _ in range(2000)]
    assert min(draws) >= timedelta(days=1) and max(draws) <= timedelta(days=3)
    lognormal = sorted(parse_delay("lognormal(18h, 0.6)").draw(rng) for _ in range(4001))
    assert timedelta(hours=16) < lognormal[2000] < timedelta(hours=20)  # its median
    mean = sum((parse_delay("exponential(8h)").draw(rng) for _ in range(4000)), timedelta()) / 4000
    assert timedelta(hours=7) < mean < timedelta(hours=9)
    assert parse_delay("2h").draw(rng) == parse_delay("fixed(2h)").draw(rng) == timedelta(hours=2)


BAD = [
    ("events:\n  handoff.acepted: { p: 0.8 }\n",
     "model.yaml:2:3: error: $.events['handoff.acepted']: unknown event 'handoff.acepted' "
     "(did you mean 'handoff.accepted'?): not an event of pathway 'sim-referral'"),
    ("events:\n  intake.done: { p: 1.5 }\n",
     "model.yaml:2:21: error: $.events['intake.done'].p: 1.5 is not a chance between 0 and 1"),
    ("events:\n  intake.done: { p: -0.1 }\n",
     "model.yaml:2:21: error: $.events['intake.done'].p: -0.1 is not a chance between 0 and 1"),
    ("events:\n  intake.done: { after: gaussian(1d) }\n",
     "model.yaml:2:25: error: $.events['intake.done'].after: 'gaussian(1d)' is not a delay: write fixed(2h), "
     "uniform(1d, 5d), exponential(8h) or lognormal(18h, 0.6)"),
    ("events:\n  intake.done: { after: 'uniform(5d, 1d)' }\n",
     "model.yaml:2:25: error: $.events['intake.done'].after: uniform(5d, 1d): the upper bound is below the lower"),
    ("acknowledge: { after: lognormal(2h) }\n",
     "model.yaml:1:23: error: $.acknowledge.after: lognormal() takes 2 arguments, got 1"),
    ("events:\n  intake.done: { data: { risk: { medium: 1 } } }\n",
     "model.yaml:2:34: error: $.events['intake.done'].data.risk.medium: 'medium' is not one of low, high"),
    ("events:\n  intake.done: { data: { rsik: { low: 1 } } }\n",
     "model.yaml:2:26: error: $.events['intake.done'].data.rsik: event 'intake.done' has no field 'rsik' "
     "(did you mean 'risk'?) (fields: insurance, risk)"),
    ("enrollment_facts: { insurnce: { medicaid: 1 } }\n",
     "model.yaml:1:21: error: $.enrollment_facts.insurnce: unknown fact 'insurnce' (did you mean 'insurance'?) "
     "(facts: insurance)"),
    ("consent: { p: 0.9, when: 1d }\n",
     "model.yaml:1:20: error: $.consent.when: unexpected key 'when' (known: p)"),
    ("evnts: {}\n",
     "model.yaml:1:1: error: $.evnts: unexpected key 'evnts' (did you mean 'events'?) (known: events, consent, "
     "acknowledge, enrollment_facts, return_to_use, medications, arrivals, work)"),
    ("return_to_use: { per_week: 9 }\n",
     "model.yaml:1:28: error: $.return_to_use.per_week: 9 is not a rate per week between 0 and 7"),
    ("events: [intake.done]\n", "model.yaml:1:9: error: $.events: expected a mapping, got list"),
    ("events:\n  intake.done: { p: 1 }\n  intake.done: { p: 0 }\n", "model.yaml:3:3: error: $.events['intake.done']: "),
    ("events: {\n", "model.yaml:2:1: error: $: "),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[str(n) for n in range(len(BAD))])
def test_a_bad_model_is_refused_with_its_position(plan: Plan, text: str, expected: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_model(text, plan, file="model.yaml")
    lines = [str(d) for d in caught.value.diagnostics]
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_every_problem_is_reported_at_once(plan: Plan) -> None:
    text = "events:\n  intake.done: { p: 2 }\n  care.endd: { p: 1 }\nconsent: { p: 3 }\n"
    with pytest.raises(ModelError) as caught:
        parse_model(text, plan, file="m.yaml")
    assert [(d.line, d.json_path) for d in caught.value.diagnostics] == [
        (2, "$.events['intake.done'].p"),
        (3, "$.events['care.endd']"),
        (4, "$.consent.p"),
    ]
