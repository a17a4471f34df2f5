"""Consent under 42 CFR Part 2 (2024 final rule): what covers a disclosure now, revocation, the accounting.

Pure: every function takes ``now``. Rules encoded here:

- a :class:`Consent` holds the elements of section 2.31: the patient, who may disclose, a specific description of
  the information, the recipients (named, and/or classes such as ``treating-providers`` in a single consent for
  treatment, payment and health care operations), the purposes, the expiry (a date, ``end-of-treatment`` or
  ``none``), the signature date and who signed;
- a consent covers a disclosure to a recipient for a purpose while it is signed, not revoked and not expired
  (``end-of-treatment`` expires when the episode ends; a date expires at the end of that day, UTC);
- revocation must be in writing; it stops every pending and future disclosure it covered, but what was
  already disclosed in reliance on it stays disclosed (the records are never touched);
- every disclosure carries the section 2.32 notice (:data:`REDISCLOSURE_NOTICE`) and is kept for the
  accounting of disclosures (section 2.25: the past 3 years).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import EventRejected

__all__ = [
    "KNOWN_PURPOSES",
    "REDISCLOSURE_NOTICE",
    "TPO",
    "Consent",
    "Disclosure",
    "Expiry",
    "PendingDisclosure",
    "covering_consent",
    "disclose",
    "disclosures_within",
    "is_current",
    "pending_blocked",
    "revoke",
    "single_tpo_consent",
    "uncovered_reason",
]

#: Section 2.32(a)(1), "Statement 1" of the 2024 final rule: travels with every disclosure made under consent.
REDISCLOSURE_NOTICE = (
    "This record which has been disclosed to you is protected by Federal confidentiality rules (42 CFR part 2). "
    "These rules prohibit you from using or disclosing this record, or testimony that describes the information "
    "contained in this record, in any civil, criminal, administrative, or legislative proceedings by any Federal, "
    "State, or local authority, against the patient, unless authorized by the consent of the patient, except as "
    "provided at 42 CFR 2.12(c)(5) or as authorized by a court in accordance with 42 CFR 2.64 or 2.65. In "
    "addition, the Federal rules prohibit you from making any other use or disclosure of this record unless at "
    "least one of the following applies: (i) Further use or disclosure is expressly permitted by the written "
    "consent of the individual whose information is being disclosed in this record or as otherwise permitted by "
    "42 CFR part 2. (ii) You are a covered entity or business associate and have received the record for "
    "treatment, payment, or health care operations, or (iii) You have received the record from a covered entity "
    "or business associate as permitted by 45 CFR part 164, subparts A and E. A general authorization for the "
    "release of medical or other information is NOT sufficient to meet the required elements of written consent "
    "to further use or redisclose the record (see 42 CFR 2.31)."
)

#: Purposes pathways use; a pathway may name others (its ``consent_purpose`` ids), so these are not enforced.
KNOWN_PURPOSES = ("treatment", "payment", "health-care-operations", "family-involvement", "care-coordination")
#: A single consent for all future treatment, payment and health care operations (2024 rule).
TPO = ("treatment", "payment", "health-care-operations")

Expiry = date | Literal["end-of-treatment", "none"]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class Consent(BaseModel):
    """A written Part 2 consent. ``patient`` and ``signed_by`` are opaque references, never names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    patient: str = Field(description="Opaque person or episode reference, e.g. P-000123.")
    discloser: str = Field(min_length=1, description="The program (or class of programs) that may disclose.")
    information: str = Field(min_length=1, description="Specific description of the information disclosed.")
    recipients: tuple[str, ...] = Field((), description="Named recipients (programs or people).")
    recipient_classes: tuple[str, ...] = Field((), description="Classes of recipients, e.g. treating-providers.")
    purposes: tuple[str, ...] = Field(min_length=1, description="Purposes, e.g. treatment, family-involvement.")
    expires: Expiry = Field(description="A date, 'end-of-treatment' or 'none'.")
    signed_on: date
    signed_by: str = Field(min_length=1, description="Who signed: the patient or an authorized representative.")
    revoked_at: datetime | None = None

    @model_validator(mode="after")
    def _complete(self) -> Consent:
        if not self.information.strip():
            raise ValueError("a consent needs a specific description of the information")
        if not (self.recipients or self.recipient_classes):
            raise ValueError("a consent needs at least one recipient or class of recipients")
        if isinstance(self.expires, date) and self.expires < self.signed_on:
            raise ValueError("a consent cannot expire before it is signed")
        return self


class PendingDisclosure(BaseModel):
    """Something about a person waiting to leave (a handoff's referral, an export, a family update)."""

    model_config = ConfigDict(frozen=True)

    id: str
    patient: str
    recipient: str
    recipient_classes: tuple[str, ...] = ()
    purpose: str
    information: str


class Disclosure(BaseModel):
    """A disclosure made, kept for the accounting: what, to whom, why, under which consent, when, with which notice."""

    model_config = ConfigDict(frozen=True)

    id: str
    patient: str
    recipient: str
    purpose: str
    information: str
    consent_id: str
    at: datetime
    notice: str = REDISCLOSURE_NOTICE


def single_tpo_consent(consent_id: str, patient: str, *, discloser: str, information: str, signed_on: date) -> Consent:
    """The 2024 rule's single consent for all future treatment, payment and health care operations, to the
    person's treating providers, until the end of treatment; signed by the person."""
    return Consent(
        id=consent_id,
        patient=patient,
        discloser=discloser,
        information=information,
        recipient_classes=("treating-providers",),
        purposes=TPO,
        expires="end-of-treatment",
        signed_on=signed_on,
        signed_by=patient,
    )


def is_current(consent: Consent, now: datetime, episode_active: bool) -> bool:
    """Signed, not revoked, not expired at ``now``."""
    today = now.date()
    if consent.signed_on > today:
        return False
    if consent.revoked_at is not None and consent.revoked_at <= now:
        return False
    if consent.expires == "end-of-treatment":
        return episode_active
    if consent.expires == "none":
        return True
    return today <= consent.expires


def _named(consent: Consent, recipient: str) -> bool:
    return _norm(recipient) in {_norm(r) for r in consent.recipients}


def _in_class(consent: Consent, classes: Iterable[str]) -> bool:
    return bool({_norm(c) for c in classes} & {_norm(c) for c in consent.recipient_classes})


def _covers(consent: Consent, recipient: str, classes: Iterable[str], purpose: str) -> bool:
    return _norm(purpose) in {_norm(p) for p in consent.purposes} and (
        _named(consent, recipient) or _in_class(consent, classes)
    )


def covering_consent(
    consents: Iterable[Consent],
    recipient: str,
    recipient_classes: Iterable[str],
    purpose: str,
    now: datetime,
    episode_active: bool,
) -> Consent | None:
    """The consent that covers disclosing to ``recipient`` for ``purpose`` now, or None.

    A recipient is covered when it is named, or belongs to a class the consent names. Of several, the one that
    names the recipient wins, then the most recently signed (then the id, so the choice is stable).
    """
    classes = tuple(recipient_classes)
    found = [c for c in consents if is_current(c, now, episode_active) and _covers(c, recipient, classes, purpose)]
    if not found:
        return None
    return min(found, key=lambda c: (not _named(c, recipient), -c.signed_on.toordinal(), c.id))


def uncovered_reason(
    consents: Iterable[Consent],
    recipient: str,
    recipient_classes: Iterable[str],
    purpose: str,
    now: datetime,
    episode_active: bool,
) -> str:
    """One line for the coordinator: why nothing covers this disclosure (empty if something does)."""
    consents, classes = list(consents), tuple(recipient_classes)
    if covering_consent(consents, recipient, classes, purpose, now, episode_active) is not None:
        return ""
    matching = [c for c in consents if _covers(c, recipient, classes, purpose)]
    if not matching:
        to = f"'{recipient}'" + (f" or its classes ({', '.join(classes)})" if classes else "")
        return f"no consent names {to} for purpose '{purpose}'"
    why = []
    for c in sorted(matching, key=lambda c: c.id):
        if c.revoked_at is not None and c.revoked_at <= now:
            why.append(f"consent {c.id} was revoked on {c.revoked_at.date().isoformat()}")
        elif c.signed_on > now.date():
            why.append(f"consent {c.id} is signed for {c.signed_on.isoformat()}")
        elif c.expires == "end-of-treatment":
            why.append(f"consent {c.id} expired at the end of treatment")
        else:
            why.append(f"consent {c.id} expired on {c.expires}")
    return f"no current consent covers '{recipient}' for purpose '{purpose}': " + "; ".join(why)


def revoke(consent: Consent, at: datetime, written: bool) -> Consent:
    """The consent revoked at ``at``. Part 2 requires revocation in writing; an oral one is refused."""
    if not written:
        raise EventRejected(
            f"consent {consent.id}: a revocation must be in writing (42 CFR Part 2); record the written revocation"
        )
    if consent.revoked_at is not None:
        raise EventRejected(f"consent {consent.id} was already revoked on {consent.revoked_at.isoformat()}")
    return consent.model_copy(update={"revoked_at": at})


def disclose(
    pending: PendingDisclosure, consents: Iterable[Consent], now: datetime, episode_active: bool = True
) -> Disclosure | None:
    """The record of making ``pending`` now under the consent that covers it, or None: nothing may be sent."""
    consent = covering_consent(
        consents, pending.recipient, pending.recipient_classes, pending.purpose, now, episode_active
    )
    if consent is None:
        return None
    return Disclosure(
        id=pending.id,
        patient=pending.patient,
        recipient=pending.recipient,
        purpose=pending.purpose,
        information=pending.information,
        consent_id=consent.id,
        at=now,
    )


def pending_blocked(
    disclosures_pending: Iterable[PendingDisclosure],
    consents: Iterable[Consent],
    now: datetime,
    episode_active: bool = True,
) -> list[PendingDisclosure]:
    """Pending disclosures that no current consent covers any more (after a revocation or an expiry).

    Disclosures already made are not inputs here: revocation never reaches back to them.
    """
    consents = list(consents)
    return [
        p
        for p in disclosures_pending
        if covering_consent(consents, p.recipient, p.recipient_classes, p.purpose, now, episode_active) is None
    ]


def _years_before(now: datetime, years: int) -> datetime:
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February: the inclusive choice, so the accounting never drops a day
        return now.replace(year=now.year - years, day=28)


def disclosures_within(disclosures: Iterable[Disclosure], now: datetime, years: int = 3) -> list[Disclosure]:
    """The accounting of disclosures (section 2.25): those made in the last ``years`` years, oldest first."""
    since = _years_before(now, years)
    return sorted((d for d in disclosures if since <= d.at <= now), key=lambda d: (d.at, d.id))
