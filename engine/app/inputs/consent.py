"""A Part 2 consent as a coordinator types it: the form read into a :class:`~engine.episode.domain.consent.Consent`
(a model refusal names its field), then checked as it may be recorded (known purposes and recipient classes,
signed by today within ten years, not already expired).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from engine.app.inputs.ids import check_id
from engine.app.inputs.text import NAME_MAX, check_text
from engine.app.inputs.times import SIGNED, parse_date, span
from engine.app.inputs.values import LIST_MAX, check_declared
from engine.episode.domain.consent import Consent
from engine.errors import InvalidInput

__all__ = ["EXPIRY_AHEAD", "check_consent", "consent_from_form"]

EXPIRY_AHEAD = timedelta(days=18_263)  # fifty years

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
                check_declared(kind, value, known, "Carepath or this pathway")
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
                "expiry date", f"is more than {span(EXPIRY_AHEAD)} ahead (or use none)", consent.expires.isoformat()
            )
    return consent
