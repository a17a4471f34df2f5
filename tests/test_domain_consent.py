"""Part 2 consent rules: what covers a disclosure, expiry, written revocation, pending disclosures, accounting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from engine.episode.domain.consent import (
    REDISCLOSURE_NOTICE,
    TPO,
    Consent,
    Disclosure,
    PendingDisclosure,
    covering_consent,
    disclose,
    disclosures_within,
    is_current,
    pending_blocked,
    revoke,
    uncovered_reason,
)
from engine.errors import EventRejected

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RESIDENTIAL = "Residential program"
TREATING = ("treating-providers",)


def consent(**kw: Any) -> Consent:
    fields: dict[str, Any] = {
        "id": "C-1",
        "patient": "P-000123",
        "discloser": "Carepath coordination program",
        "information": "Referral summary: level of care, current medications, screening results",
        "recipients": (RESIDENTIAL,),
        "purposes": ("treatment",),
        "expires": "none",
        "signed_on": date(2025, 5, 1),
        "signed_by": "patient",
    }
    return Consent(**(fields | kw))


def covers(consents: list[Consent], recipient: str = RESIDENTIAL, **kw: Any) -> Consent | None:
    args: dict[str, Any] = {"recipient_classes": (), "purpose": "treatment", "now": NOW, "episode_active": True}
    args |= kw
    return covering_consent(consents, recipient, **args)


# -------------------------------------------------------------------------------------------- the elements


def test_a_consent_needs_the_required_elements() -> None:
    with pytest.raises(ValidationError, match="at least one recipient or class"):
        consent(recipients=())
    with pytest.raises(ValidationError, match="specific description"):
        consent(information="   ")
    with pytest.raises(ValidationError, match="purposes"):
        consent(purposes=())
    with pytest.raises(ValidationError, match="cannot expire before it is signed"):
        consent(expires=date(2025, 4, 1))
    with pytest.raises(ValidationError, match="signed_by"):
        consent(signed_by="")
    with pytest.raises(ValidationError, match="Extra inputs"):
        consent(patient_name="x")


# ---------------------------------------------------------------------------------------------- coverage


def test_covered_by_a_named_recipient_ignoring_case_and_spacing() -> None:
    c = consent()
    assert covers([c]) == c
    assert covers([c], "  residential   PROGRAM ") == c
    assert covers([c], "Intensive outpatient program") is None


def test_covered_by_a_class_of_recipients() -> None:
    tpo = consent(id="C-TPO", recipients=(), recipient_classes=TREATING, purposes=TPO)
    assert covers([tpo], "Intensive outpatient program", recipient_classes=TREATING) == tpo
    assert covers([tpo], "Intensive outpatient program", recipient_classes=("payers",)) is None
    assert covers([tpo], "Intensive outpatient program") is None


def test_covered_only_for_its_purposes() -> None:
    tpo = consent(purposes=TPO)
    assert covers([tpo], purpose="payment") == tpo
    assert covers([tpo], purpose="family-involvement") is None
    family = consent(id="C-2", recipients=("Family contact F-000001",), purposes=("family-involvement",))
    assert covers([tpo, family], "Family contact F-000001", purpose="family-involvement") == family


def test_a_named_recipient_wins_over_a_class_then_the_latest_signature() -> None:
    by_class = consent(id="C-A", recipients=(), recipient_classes=TREATING, signed_on=date(2025, 5, 20))
    named_old = consent(id="C-B", signed_on=date(2025, 1, 1))
    named_new = consent(id="C-C", signed_on=date(2025, 3, 1))
    assert covers([by_class, named_old, named_new], recipient_classes=TREATING) == named_new


@pytest.mark.parametrize(
    ("expires", "at", "active", "current"),
    [
        (date(2025, 6, 1), NOW, True, True),  # through the last day
        (date(2025, 5, 31), NOW, True, False),
        ("none", NOW + timedelta(days=3650), False, True),
        ("end-of-treatment", NOW, True, True),
        ("end-of-treatment", NOW, False, False),  # episode over: expired
    ],
)
def test_expiry_kinds(expires: date | str, at: datetime, active: bool, current: bool) -> None:
    c = consent(expires=expires)
    assert is_current(c, at, episode_active=active) is current
    assert (covers([c], now=at, episode_active=active) == c) is current


def test_a_consent_signed_for_a_later_date_does_not_cover_yet() -> None:
    c = consent(signed_on=date(2025, 6, 2), expires="none")
    assert covers([c]) is None
    assert "is signed for 2025-06-02" in uncovered_reason([c], RESIDENTIAL, (), "treatment", NOW, True)


def test_the_reason_nothing_covers_is_one_line_for_the_coordinator() -> None:
    assert uncovered_reason([], RESIDENTIAL, TREATING, "treatment", NOW, True) == (
        "no consent names 'Residential program' or its classes (treating-providers) for purpose 'treatment'"
    )
    expired = consent(id="C-7", expires=date(2025, 5, 10))
    ended = consent(id="C-8", expires="end-of-treatment")
    assert uncovered_reason([expired, ended], RESIDENTIAL, (), "treatment", NOW, False) == (
        "no current consent covers 'Residential program' for purpose 'treatment': consent C-7 expired on "
        "2025-05-10; consent C-8 expired at the end of treatment"
    )
    assert uncovered_reason([consent()], RESIDENTIAL, (), "treatment", NOW, True) == ""


# -------------------------------------------------------------------------------------------- revocation


def test_revocation_must_be_written() -> None:
    c = consent()
    with pytest.raises(EventRejected, match=r"^consent C-1: a revocation must be in writing"):
        revoke(c, NOW, written=False)
    assert c.revoked_at is None and covers([c]) == c


def test_a_revoked_consent_never_covers_from_the_moment_of_revocation() -> None:
    c = revoke(consent(), NOW, written=True)
    assert c.revoked_at == NOW
    assert covers([c], now=NOW - timedelta(minutes=1)) == c  # before it, it still covered
    assert covers([c]) is None
    assert "consent C-1 was revoked on 2025-06-01" in uncovered_reason([c], RESIDENTIAL, (), "treatment", NOW, True)
    with pytest.raises(EventRejected, match="already revoked"):
        revoke(c, NOW + timedelta(days=1), written=True)


def test_revocation_stops_pending_disclosures_but_not_past_ones() -> None:
    c = consent(id="C-1", recipients=(RESIDENTIAL, "Intensive outpatient program"))
    other = consent(id="C-9", recipients=("Intensive outpatient program",), signed_on=date(2025, 5, 2))
    referral = PendingDisclosure(
        id="D-1", patient="P-000123", recipient=RESIDENTIAL, purpose="treatment", information="referral summary"
    )
    made = disclose(referral, [c, other], NOW - timedelta(days=2))
    assert made is not None and made.consent_id == "C-1"

    update = referral.model_copy(update={"id": "D-2", "information": "weekly progress update"})
    iop = referral.model_copy(update={"id": "D-3", "recipient": "Intensive outpatient program"})
    revoked = revoke(c, NOW, written=True)

    assert pending_blocked([update, iop], [revoked, other], NOW) == [update]  # IOP is still covered by C-9
    assert disclose(update, [revoked, other], NOW) is None  # nothing leaves
    assert disclose(iop, [revoked, other], NOW) is not None
    # what was disclosed in reliance on the consent stays disclosed, and stays in the accounting
    assert disclosures_within([made], NOW) == [made]
    assert made.consent_id == "C-1" and made.notice == REDISCLOSURE_NOTICE


# ---------------------------------------------------------------------------------- disclosures and notice


def test_a_disclosure_records_what_to_whom_why_under_which_consent_and_the_notice() -> None:
    pending = PendingDisclosure(
        id="D-5",
        patient="P-000123",
        recipient="Intensive outpatient program",
        recipient_classes=TREATING,
        purpose="treatment",
        information="referral summary",
    )
    tpo = consent(id="C-TPO", recipients=(), recipient_classes=TREATING, purposes=TPO)
    d = disclose(pending, [tpo], NOW)
    assert d == Disclosure(
        id="D-5",
        patient="P-000123",
        recipient="Intensive outpatient program",
        purpose="treatment",
        information="referral summary",
        consent_id="C-TPO",
        at=NOW,
        notice=REDISCLOSURE_NOTICE,
    )


def test_the_notice_is_the_2024_statement() -> None:
    assert REDISCLOSURE_NOTICE.startswith(
        "This record which has been disclosed to you is protected by Federal confidentiality rules (42 CFR part 2)."
    )
    assert "NOT sufficient" in REDISCLOSURE_NOTICE and "2.31" in REDISCLOSURE_NOTICE


def _made(n: int, at: datetime) -> Disclosure:
    return Disclosure(
        id=f"D-{n}",
        patient="P-000123",
        recipient=RESIDENTIAL,
        purpose="treatment",
        information="x",
        consent_id="C-1",
        at=at,
    )


def test_accounting_lists_the_last_three_years_oldest_first() -> None:
    old = _made(1, NOW.replace(year=2022) - timedelta(seconds=1))
    edge = _made(2, NOW.replace(year=2022))
    recent = _made(3, NOW - timedelta(days=1))
    future = _made(4, NOW + timedelta(days=1))
    assert disclosures_within([recent, future, old, edge], NOW) == [edge, recent]
    assert disclosures_within([recent, old, edge], NOW, years=1) == [recent]


def test_accounting_from_29_february_keeps_the_whole_day_three_years_back() -> None:
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    kept = _made(1, datetime(2025, 2, 28, 12, 0, tzinfo=UTC))
    assert disclosures_within([kept], leap) == [kept]
