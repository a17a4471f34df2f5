"""Ids people type, integrations send and Carepath prints: each kind follows one rule (length, characters, form),
and a refusal names the first character that breaks it. The table of kinds is the package docstring's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidInput, quote
from engine.language.fields import EVENT_PATTERN, FACT_PATTERN, ID_PATTERN

__all__ = ["check_escalation", "check_id"]

_STORE_INT_MAX = 2**63 - 1


@dataclass(frozen=True)
class _IdRule:
    longest: int
    form: re.Pattern[str]  # the whole id
    char: re.Pattern[str]  # one character it may hold
    says: str


_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]"
_OPAQUE = "letters, digits, '.', '_', '-' or ':', a letter or digit first"
_RULES = {
    "opaque": _IdRule(64, re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*"), re.compile(r"[A-Za-z0-9._:-]"), _OPAQUE),
    "event": _IdRule(128, re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*"), re.compile(r"[A-Za-z0-9._:-]"), _OPAQUE),
    "handoff": _IdRule(
        200,
        re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*"),
        re.compile(r"[A-Za-z0-9._:/-]"),
        "letters, digits, '.', '_', '-', ':' or '/', a letter or digit first",
    ),
    "printable": _IdRule(300, re.compile(_PRINTABLE + "+"), re.compile(_PRINTABLE), "printable characters"),
    "lower": _IdRule(
        64, re.compile(ID_PATTERN.strip("^$")), re.compile(r"[a-z0-9-]"), "lowercase letters, digits and '-'"
    ),
    "event-name": _IdRule(
        128, re.compile(EVENT_PATTERN.strip("^$")), re.compile(r"[a-z0-9.-]"), "lowercase words joined by dots"
    ),
    "field": _IdRule(
        64, re.compile(FACT_PATTERN.strip("^$")), re.compile(r"[a-z0-9_]"), "lowercase letters, digits and '_'"
    ),
}
#: Which rule each kind of id follows, and an example for the message.
_KINDS: dict[str, tuple[str, str]] = {
    "person id": ("opaque", "P-000123"),
    "signed-by id": ("opaque", "P-000123"),
    "clinician id": ("opaque", "CLIN-7"),
    "staff id": ("opaque", "STAFF-12"),
    "consent id": ("opaque", "cn-2026-0042"),
    "episode id": ("opaque", "ep-1a2b3c4d"),
    "event id": ("event", "release-2026-12-01"),
    "Idempotency-Key": ("event", "7d0f3c52-9a1e-4b8e-a3d2-5c6f1e0b9a47"),
    "token id": ("opaque", "tok-1a2b3c4d"),
    "patient id": ("opaque", "pt-3f9a0c2e7b1d4a6c"),
    "handoff id": ("handoff", "ep-1a2b3c4d/2/handoff"),
    "discrepancy id": ("printable", "ep-1a2b3c4d/2/omission:buprenorphine"),
    "pathway id": ("lower", "reentry"),
    "stage id": ("lower", "pre-release"),
    "need": ("lower", "housing"),
    "purpose": ("lower", "treatment"),
    "recipient class": ("lower", "treating-providers"),
    "event": ("event-name", "detox.completed"),
    "fact": ("field", "days_on_moud"),
    "payload field": ("field", "medication"),
    "parameter": ("field", "pre_release_window"),
}


def check_id(kind: str, value: object) -> str:
    """``value`` if it is a sane id of ``kind`` (a row of the table in this module's docstring)."""
    rule_name, example = _KINDS[kind]
    rule = _RULES[rule_name]
    says = f"1-{rule.longest} {rule.says} (e.g. {example})"
    if not isinstance(value, str):
        raise InvalidInput(kind, f"must be text: {says}")
    if not value:
        raise InvalidInput(kind, f"is empty; it takes {says}")
    if len(value) > rule.longest:
        raise InvalidInput(kind, f"has {len(value):,} characters, at most {rule.longest}", value)
    if not rule.form.fullmatch(value):
        odd = next((c for c in value if not rule.char.fullmatch(c)), None)
        what = f"contains {quote(odd)}, which is not allowed" if odd is not None else "is not of the right form"
        raise InvalidInput(kind, f"{what}; it takes {says}", value)
    return value


def check_escalation(value: object) -> int:
    """An escalation number as ``carepath status`` shows it: a whole number from 1 to what the store holds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("escalation number", "is not a whole number (see carepath status)", value)
    if not 1 <= value <= _STORE_INT_MAX:
        raise InvalidInput("escalation number", "is out of range: escalations are numbered from 1", value)
    return value
