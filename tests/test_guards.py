"""Guards: a declarative truth table, missing facts, and the one-line reading shown in plans and graphs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from engine.language.guards import describe, evaluate, facts_in
from engine.language.model import Guard

_GUARD: TypeAdapter[Guard] = TypeAdapter(Guard)


def guard(doc: Any) -> Guard:
    return _GUARD.validate_python(doc)


INSURED = {
    "all": [{"fact": "insurance", "in": ["commercial", "medicaid"]}, {"not": {"fact": "denied", "equals": True}}]
}


@pytest.mark.parametrize(
    ("doc", "facts", "expected"),
    [
        ({"fact": "insurance", "equals": "medicaid"}, {"insurance": "medicaid"}, True),
        ({"fact": "insurance", "equals": "medicaid"}, {"insurance": "self-pay"}, False),
        ({"fact": "insurance", "equals": "medicaid"}, {}, False),
        ({"fact": "insurance", "not_equals": "medicaid"}, {"insurance": "self-pay"}, True),
        ({"fact": "insurance", "not_equals": "medicaid"}, {"insurance": "medicaid"}, False),
        ({"fact": "insurance", "not_equals": "medicaid"}, {}, False),
        ({"fact": "insurance", "in": ["a", "b"]}, {"insurance": "b"}, True),
        ({"fact": "insurance", "in": ["a", "b"]}, {"insurance": "c"}, False),
        ({"fact": "insurance", "in": ["a", "b"]}, {"insurance": None}, False),
        ({"fact": "days", "at_least": 90}, {"days": 90}, True),
        ({"fact": "days", "at_least": 90}, {"days": 89.5}, False),
        ({"fact": "days", "at_least": 90}, {"days": "120"}, False),
        ({"fact": "days", "at_least": 1}, {"days": True}, False),
        ({"fact": "days", "at_most": 3}, {"days": 3}, True),
        ({"fact": "days", "at_most": 3}, {"days": 4}, False),
        ({"fact": "days", "at_most": 3}, {}, False),
        ({"fact": "days", "is_set": True}, {"days": 0}, True),
        ({"fact": "days", "is_set": True}, {}, False),
        ({"fact": "days", "is_set": False}, {}, True),
        ({"fact": "days", "is_set": False}, {"days": None}, True),
        ({"fact": "days", "is_set": False}, {"days": 1}, False),
        ({"fact": "flag", "equals": True}, {"flag": 1}, False),
        ({"fact": "count", "equals": 1}, {"count": True}, False),
        ({"fact": "count", "equals": 1}, {"count": 1.0}, True),
        (INSURED, {"insurance": "medicaid"}, True),
        (INSURED, {"insurance": "medicaid", "denied": True}, False),
        (INSURED, {"insurance": "medicaid", "denied": False}, True),
        (INSURED, {}, False),
        ({"any": [{"fact": "a", "equals": 1}, {"fact": "b", "equals": 2}]}, {"b": 2}, True),
        ({"any": [{"fact": "a", "equals": 1}, {"fact": "b", "equals": 2}]}, {"a": 2, "b": 1}, False),
        ({"not": {"fact": "a", "equals": 1}}, {}, True),
        ({"not": {"not": {"fact": "a", "equals": 1}}}, {"a": 1}, True),
    ],
)
def test_truth_table(doc: Any, facts: dict[str, Any], expected: bool) -> None:
    assert evaluate(guard(doc), facts) is expected


def test_facts_in_walks_every_branch() -> None:
    g = guard({"any": [INSURED, {"not": {"fact": "days", "at_least": 3}}]})
    assert facts_in(g) == {"insurance", "denied", "days"}


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        (INSURED, "insurance in [commercial, medicaid] and not denied"),
        ({"fact": "denied", "equals": False}, "not denied"),
        ({"fact": "insurance", "equals": "self-pay"}, "insurance = self-pay"),
        ({"fact": "insurance", "not_equals": "self-pay"}, "insurance != self-pay"),
        ({"fact": "days", "at_least": 90}, "days >= 90"),
        ({"fact": "score", "at_most": 2.5}, "score <= 2.5"),
        ({"fact": "days", "is_set": True}, "days is set"),
        ({"fact": "days", "is_set": False}, "days is not set"),
        ({"not": {"fact": "insurance", "equals": "medicaid"}}, "not (insurance = medicaid)"),
        (
            {"any": [INSURED, {"fact": "days", "at_least": 3}]},
            "(insurance in [commercial, medicaid] and not denied) or days >= 3",
        ),
        (
            {"all": [{"any": [{"fact": "a", "equals": 1}, {"fact": "b", "equals": 2}]}, {"fact": "c", "equals": True}]},
            "(a = 1 or b = 2) and c",
        ),
    ],
)
def test_describe(doc: Any, text: str) -> None:
    assert describe(guard(doc)) == text
