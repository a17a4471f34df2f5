"""What Carepath accepts from people: the rules every typed value passes before anything is read for it or stored.

Pure: no store, no Prefect, no clock (``now`` is passed in). Each check returns the value as Carepath keeps it (a
time in UTC, ``"14"`` as the number 14) or raises :class:`~engine.errors.InvalidInput`, one line naming the field
and the rule, the value escaped and shortened (``person id: 'P-1\\nX' contains '\\n', which is not allowed; ...``).
The use cases of :mod:`engine.app` run these before they ask Prefect anything, so every face (CLI, flows, HTTP)
refuses the same input the same way, and a refusal never depends on Prefect being up.

**Ids** (people type them, integrations send them, Carepath prints them):

==============================================  ======  ================================================
id                                              length  characters
==============================================  ======  ================================================
person, signed-by, clinician and staff          1-64    letters, digits, ``. _ - :``, a letter or digit
(``--by``), consent, episode                            first (``P-000123``, ``cn-2026-0042``)
event id (``--id``)                             1-128   the same (room for a UUID or an HL7 message id)
handoff id                                      1-200   the same and ``/`` (``ep-1a2b3c4d/2/handoff``)
discrepancy id                                  1-300   printable, one line (it holds a drug's name)
pathway, stage, need, purpose, recipient class  1-64    lowercase: ``[a-z][a-z0-9-]*``
escalation number                                       1 to 2**63 - 1 (what the store can hold)
==============================================  ======  ================================================

**Values**, checked against what the pathway declares (an undeclared fact, event or payload field is refused):

- text (a reason, an outcome, a consent's information, a ``string`` fact or payload field): at most
  :data:`TEXT_MAX` characters, no control character but tab and line breaks;
- a name (a consent's recipient or discloser, a medication's fields): at most :data:`NAME_MAX`, on one line;
- ``number``: finite, at most :data:`NUMBER_MAX` either side of zero; ``boolean``: ``true`` or ``false``;
  ``enum``: one of its ``values``; ``date``: ``YYYY-MM-DD`` within :data:`DATE_SPAN` of today;
- lists (a medication list; a consent's purposes, recipients and classes): at most :data:`LIST_MAX` entries.

**Times and dates**, around now (a time without an offset is UTC); the windows are :class:`Window` constants:

- enrollment (``--at``): :data:`ENROLLMENT`, a year back (a late entry) to a day ahead (time zones, clock skew);
- an appointment (``handoff ... schedule --at``): :data:`APPOINTMENT`, 30 days back to a year ahead;
- a consent's signature: :data:`SIGNED`, ten years back to today anywhere on Earth (UTC+14);
- a consent's expiry date: not already past (UTC, as :func:`engine.episode.domain.consent.is_current` reads it), at most
  :data:`EXPIRY_AHEAD` ahead (``none`` is a consent that never expires);
- a pathway parameter (``--param``): a duration up to :data:`engine.durations.MAX_DURATION` (ten years).
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from engine.clock import utc
from engine.episode.domain.consent import Consent
from engine.episode.domain.handoff_terms import ACTIONS, PARTIES
from engine.errors import InvalidInput, quote
from engine.language.durations import MAX_DURATION, parse_duration
from engine.language.fields import EVENT_PATTERN, FACT_PATTERN, ID_PATTERN

__all__ = [
    "APPOINTMENT",
    "DATE_SPAN",
    "ENROLLMENT",
    "EXPIRY_AHEAD",
    "LIST_MAX",
    "NAME_MAX",
    "NUMBER_MAX",
    "SIGNED",
    "TEXT_MAX",
    "Window",
    "check_consent",
    "check_escalation",
    "check_facts",
    "check_id",
    "check_params",
    "check_payload",
    "check_text",
    "check_time",
    "check_value",
    "consent_from_form",
    "parse_date",
    "parse_time",
]

TEXT_MAX = 2_000
NAME_MAX = 200
LIST_MAX = 100
NUMBER_MAX = 1e12
DATE_SPAN = timedelta(days=36_525)  # a hundred years
EXPIRY_AHEAD = timedelta(days=18_263)  # fifty years
_STORE_INT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Window:
    """Times ``what`` may be: from ``back`` before now to ``ahead`` after it."""

    what: str
    back: timedelta
    ahead: timedelta


ENROLLMENT = Window("enrollment time", back=timedelta(days=366), ahead=timedelta(days=1))
APPOINTMENT = Window("appointment time", back=timedelta(days=30), ahead=timedelta(days=366))
#: A date: the latest is today in the easternmost time zone (UTC+14), so nobody's today is refused.
SIGNED = Window("signed-on date", back=timedelta(days=3_653), ahead=timedelta(hours=14))

# ------------------------------------------------------------------------------------------------------- ids


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


# ------------------------------------------------------------------------------------------------------ text


def check_text(field: str, value: object, *, limit: int = TEXT_MAX, one_line: bool = False) -> str:
    """Free text (or, with ``one_line``, a name): not blank, at most ``limit`` characters, nothing unprintable."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    if not value.strip():
        raise InvalidInput(field, "is empty")
    if len(value) > limit:
        raise InvalidInput(field, f"has {len(value):,} characters, at most {limit:,}", value)
    allowed, refused = ("", ("Cc", "Cs", "Zl", "Zp")) if one_line else ("\t\n\r", ("Cc", "Cs"))
    odd = next((c for c in value if c not in allowed and unicodedata.category(c) in refused), None)
    if odd is not None:
        what = "a line break" if odd in "\n\r\u2028\u2029" else f"the control character {quote(odd)}"
        raise InvalidInput(field, f"contains {what}; {'one line of ' if one_line else ''}printable text only", value)
    return value


# ------------------------------------------------------------------------------------------------ time, dates


def parse_time(what: str, value: object) -> datetime:
    """An ISO 8601 time as aware UTC (no offset: UTC); never an OverflowError."""
    example = "is not an ISO 8601 time (e.g. 2026-12-01T09:00, UTC unless an offset is given)"
    try:
        if isinstance(value, datetime):
            return utc(value)
        if isinstance(value, str) and len(value) <= 64:
            return utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        pass
    raise InvalidInput(what, example, value if isinstance(value, str) else type(value).__name__)


def check_time(window: Window, value: object, now: datetime) -> datetime:
    """``value`` (ISO text or a datetime) as UTC, if it falls in ``window`` around ``now``."""
    at = parse_time(window.what, value)
    earliest, latest = now - window.back, now + window.ahead
    if not earliest <= at <= latest:
        how = f"more than {_span(window.back)} ago" if at < earliest else f"more than {_span(window.ahead)} ahead"
        raise InvalidInput(
            window.what,
            f"is {how}: it must be from {_span(window.back)} before to {_span(window.ahead)} after now "
            f"({_minutes(now)})",
            _minutes(at),
        )
    return at


def _minutes(at: datetime) -> str:
    return at.isoformat(timespec="minutes").replace("+00:00", " UTC")


def parse_date(what: str, value: object) -> date:
    """A ``YYYY-MM-DD`` date (a ``date`` passes as it is)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) <= 32:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(what, "is not a date (YYYY-MM-DD)", value if isinstance(value, str) else type(value).__name__)


def _span(delta: timedelta) -> str:
    if delta >= timedelta(days=730):
        return f"{delta.days // 365} years"
    if delta >= timedelta(days=1):
        return f"{delta.days} day{'s' if delta.days > 1 else ''}"
    return f"{delta // timedelta(hours=1)} hours"


# ------------------------------------------------------------------------------------------ declared values


def _number(field: str, value: object) -> int | float:
    number: int | float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) <= 32:
        for kind in (int, float):
            try:
                number = kind(value.strip())
                break
            except ValueError:
                continue
    if number is None:
        raise InvalidInput(field, "is not a number (e.g. 14 or 2.5)", value)
    if not math.isfinite(number) or abs(number) > NUMBER_MAX:
        raise InvalidInput(field, f"is not a finite number between -{NUMBER_MAX:,.0f} and {NUMBER_MAX:,.0f}", value)
    return number


def _boolean(field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(field, "is not true or false", value)


def _one_of(field: str, value: object, values: Iterable[str]) -> str:
    allowed = list(values)
    if isinstance(value, str) and value in allowed:
        return value
    near = difflib.get_close_matches(value, allowed, n=1) if isinstance(value, str) and len(value) < 100 else []
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise InvalidInput(field, f"is not one of {', '.join(allowed)}{hint}", value)


def _date_value(field: str, value: object, now: datetime) -> str:
    day = parse_date(field, value)
    if not (now - DATE_SPAN).date() <= day <= (now + DATE_SPAN).date():
        raise InvalidInput(field, f"is more than {_span(DATE_SPAN)} from today", day.isoformat())
    return day.isoformat()


def check_value(field: str, declared: Mapping[str, Any], value: object, now: datetime) -> object:
    """A fact's or payload field's value against its declaration (``type``, ``values``), converted to that type."""
    kind = declared.get("type")
    if kind == "number":
        return _number(field, value)
    if kind == "boolean":
        return _boolean(field, value)
    if kind == "enum":
        return _one_of(field, value, declared.get("values") or ())
    if kind == "date":
        return _date_value(field, value, now)
    if kind == "list":
        return _medications(field, value)
    return check_text(field, value)


def _known(kind: str, name: object, known: Iterable[str], whose: str) -> str:
    """``name``, a sane id of ``kind`` that ``whose`` declares (else a did-you-mean, or what is declared)."""
    check_id(kind, name)
    assert isinstance(name, str)
    names = sorted(known)
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(names) or 'none'}"
        raise InvalidInput(kind, f"is not declared by {whose} ({hint})", name)
    return name


def check_facts(
    pathway_id: str, declared: Mapping[str, Mapping[str, Any]], facts: Mapping[str, object], now: datetime
) -> dict[str, object]:
    """Enrollment facts: each declared by the pathway, each value of its declared type (converted)."""
    out = {}
    for name, value in facts.items():
        _known("fact", name, declared, f"pathway {pathway_id!r}")
        out[name] = check_value(f"fact {name}", declared[name], value, now)
    return out


#: Built-in payload fields that hold an id, a time or a word from a list rather than free text.
_BUILTIN_FIELDS: dict[str, Callable[[str, object, datetime], object]] = {
    "handoff": lambda field, value, now: check_id("handoff id", value),
    "to": lambda field, value, now: check_id("stage id", value),
    "need": lambda field, value, now: check_id("need", value),
    "consent": lambda field, value, now: check_id("consent id", value),
    "action": lambda field, value, now: _one_of("handoff action", value, ACTIONS),
    "party": lambda field, value, now: _one_of("handoff party", value, PARTIES),
    "appointment_at": lambda field, value, now: check_time(APPOINTMENT, value, now).isoformat(),
}


def check_payload(
    pathway_id: str, events: Mapping[str, Mapping[str, Any]], name: object, data: Mapping[str, object], now: datetime
) -> dict[str, object]:
    """An event's name and payload against the pathway's declarations (``Plan.events``, built-ins included): the
    payload with each value converted to its declared type."""
    _known("event", name, events, f"pathway {pathway_id!r}")
    assert isinstance(name, str)
    event = events[name]
    fields: Mapping[str, Mapping[str, Any]] = event.get("payload") or {}
    out: dict[str, object] = {}
    for key, value in data.items():
        _known("payload field", key, fields, f"event {name!r}")
        if value is None:
            continue
        builtin = _BUILTIN_FIELDS.get(key) if event.get("builtin") else None
        field = f"payload field {key}"
        out[key] = builtin(field, value, now) if builtin else check_value(field, fields[key], value, now)
    missing = [f for f, spec in fields.items() if spec.get("required", True) and f not in out]
    if missing:
        raise InvalidInput(f"event {name!r}", f"missing field {missing[0]!r}")
    return out


_MEDICATION_FIELDS = ("name", "dose", "route", "frequency", "rxnorm", "reason")


def _medications(field: str, value: object) -> list[object]:
    """A medication list: at most LIST_MAX entries, each a name or a mapping of a medication's fields (unchanged)."""
    if not isinstance(value, list):
        raise InvalidInput(field, "must be a list of medications")
    if len(value) > LIST_MAX:
        raise InvalidInput(field, f"has {len(value):,} medications, at most {LIST_MAX}")
    for n, entry in enumerate(value, 1):
        fields = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(fields, Mapping):
            raise InvalidInput(f"medication {n}", "must be a name or a mapping of name, dose, route ...")
        if "name" not in fields:
            raise InvalidInput(f"medication {n}", "has no name")
        for key, text in fields.items():
            if key not in _MEDICATION_FIELDS:
                raise InvalidInput(f"medication {n}", f"has no field {quote(key)} ({', '.join(_MEDICATION_FIELDS)})")
            if text is not None:
                check_text(f"medication {n} {key}", text, limit=NAME_MAX, one_line=True)
    return value


# ------------------------------------------------------------------------------------------------- parameters


def check_params(params: Mapping[str, object]) -> dict[str, timedelta]:
    """Pathway parameters: each a duration (text such as ``60d``, or a timedelta) from 0 to ten years."""
    out = {}
    for name, value in params.items():
        check_id("parameter", name)
        field = f"parameter {name}"
        if isinstance(value, str):
            try:
                value = parse_duration(value)
            except ValueError as exc:
                raise InvalidInput(field, str(exc)) from None
        if not isinstance(value, timedelta) or not timedelta(0) <= value <= MAX_DURATION:
            raise InvalidInput(field, "must be a duration from 0 to ten years (e.g. 30d)", str(value))
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------------- consent

#: How each field of a :class:`Consent` is named in a refusal.
_CONSENT_FIELDS = {
    "id": "consent id",
    "discloser": "discloser",
    "information": "information",
    "recipients": "recipient",
    "recipient_classes": "recipient class",
    "purposes": "purpose",
    "expires": "expiry date",
    "signed_on": "signed-on date",
    "signed_by": "signed-by id",
}


def consent_from_form(form: Mapping[str, Any], patient: str) -> Consent:
    """The :class:`Consent` a coordinator typed (``signed_on`` and a dated ``expires`` as ``YYYY-MM-DD`` text;
    ``expires`` may also be ``end-of-treatment`` or ``none``). A model refusal names its field. Check the result
    with :func:`check_consent`."""
    values = dict(form)
    for key in ("purposes", "recipients", "recipient_classes"):
        values[key] = tuple(values.get(key) or ())
    expires = values.get("expires", "end-of-treatment")
    if expires not in ("end-of-treatment", "none"):
        values["expires"] = parse_date("expiry date", expires)
    values["signed_on"] = parse_date("signed-on date", values.get("signed_on"))
    for key in ("id", "signed_by"):
        check_id(_CONSENT_FIELDS[key], values.get(key))
    check_text("information", values.get("information"))
    check_text("discloser", values.get("discloser"), limit=NAME_MAX, one_line=True)
    if not values["purposes"]:
        raise InvalidInput("purpose", "none given: a consent lists at least one purpose")
    if not (values["recipients"] or values["recipient_classes"]):
        raise InvalidInput("recipient", "none given: a consent names a recipient or a class of recipients")
    if isinstance(values.get("expires"), date) and values["expires"] < values["signed_on"]:
        why = f"is before the signed-on date {values['signed_on'].isoformat()}"
        raise InvalidInput("expiry date", why, values["expires"].isoformat())
    try:
        return Consent.model_validate({**values, "patient": patient})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        field = _CONSENT_FIELDS.get(str(loc[0]), str(loc[0])) if loc else "consent"
        message = str((error.get("ctx") or {}).get("error") or error["msg"]).removeprefix("Value error, ")
        raise InvalidInput(field, message[:1].lower() + message[1:]) from None


def check_consent(consent: Consent, now: datetime, purposes: Iterable[str], classes: Iterable[str]) -> Consent:
    """A consent as it may be recorded: sane ids and text; purposes and recipient classes that Carepath or the
    pathway knows; signed by today (anywhere) within ten years; not already expired."""
    check_id("consent id", consent.id)
    check_id("signed-by id", consent.signed_by)
    check_text("discloser", consent.discloser, limit=NAME_MAX, one_line=True)
    check_text("information", consent.information)
    lists = (
        ("purpose", consent.purposes, purposes),
        ("recipient class", consent.recipient_classes, classes),
        ("recipient", consent.recipients, None),
    )
    for kind, given, known in lists:
        if len(given) > LIST_MAX:
            raise InvalidInput(kind, f"{len(given):,} given, at most {LIST_MAX}")
        for value in given:
            if known is None:
                check_text(kind, value, limit=NAME_MAX, one_line=True)
            else:
                _known(kind, value, known, "Carepath or this pathway")
    if not consent.purposes:
        raise InvalidInput("purpose", "none given: a consent lists at least one purpose")
    if not (consent.recipients or consent.recipient_classes):
        raise InvalidInput("recipient", "none given: a consent names a recipient or a class of recipients")
    today = now.date()
    if consent.signed_on > (now + SIGNED.ahead).date():
        raise InvalidInput(
            SIGNED.what, f"is in the future (today is {today.isoformat()})", consent.signed_on.isoformat()
        )
    if consent.signed_on < (now - SIGNED.back).date():
        raise InvalidInput(SIGNED.what, "is more than ten years ago", consent.signed_on.isoformat())
    if isinstance(consent.expires, date):
        if consent.expires < today:
            why = f"has already passed (today is {today.isoformat()}): the consent would cover nothing"
            raise InvalidInput("expiry date", why, consent.expires.isoformat())
        if consent.expires > (now + EXPIRY_AHEAD).date():
            raise InvalidInput(
                "expiry date", f"is more than {_span(EXPIRY_AHEAD)} ahead (or use none)", consent.expires.isoformat()
            )
    return consent
