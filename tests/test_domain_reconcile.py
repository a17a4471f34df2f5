"""Medication reconciliation: each discrepancy kind, matching by code / alias / name, MOUD omission, review."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from engine.episode.domain.reconcile import (
    KINDS,
    CriticalMedication,
    Discrepancy,
    Medication,
    carry_marks,
    compare,
    critical_list,
    mark_intentional,
    needs_escalation,
    newly_critical,
    summary,
    supersede,
    table_rows,
)
from engine.errors import EventRejected
from engine.language.model import PathwaySpec

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def seed() -> PathwaySpec:
    return PathwaySpec.model_validate(yaml.safe_load((ROOT / "pathways" / "detox-to-aftercare.yaml").read_text()))


@functools.cache
def moud() -> tuple[CriticalMedication, ...]:
    """The seed pathway's ``medications.critical``: buprenorphine, methadone, naltrexone with codes and brands."""
    spec = seed()
    assert spec.medications is not None
    return tuple(critical_list(spec.medications.critical))


def med(name: str, **kw: str) -> Medication:
    return Medication(name=name, **kw)


def kinds(found: list[Discrepancy]) -> list[tuple[str, str]]:
    return [(d.kind, d.medication) for d in found]


# --------------------------------------------------------------------------------------------- each kind


def test_identical_lists_have_no_discrepancy() -> None:
    lst = [med("buprenorphine", dose="16 mg", route="SL", frequency="daily"), med("sertraline", dose="50 mg")]
    assert compare(lst, lst, moud()) == []


def test_omission_of_an_ordinary_drug_is_not_critical() -> None:
    [d] = compare([med("sertraline", dose="50 mg")], [], moud())
    assert (d.kind, d.critical, d.medication_class, d.key) == ("omission", False, None, "omission:sertraline")
    assert d.detail == "on the sending list, missing from the receiving list"


def test_dose_route_and_frequency_changes() -> None:
    sending = [med("methadone", dose="80 mg", route="oral", frequency="daily")]
    receiving = [med("Methadose", dose="30 mg", route="IV", frequency="BID")]
    found = compare(sending, receiving, moud())
    assert [(d.kind, d.detail) for d in found] == [
        ("dose-change", "dose '80 mg' -> '30 mg'"),
        ("route-change", "route 'oral' -> 'IV'"),
        ("frequency-change", "frequency 'daily' -> 'BID'"),
    ]
    assert all(d.medication_class == "MOUD" and not d.critical for d in found)


def test_equivalent_spellings_are_not_changes() -> None:
    sending = [med("Buprenorphine", dose="8 mg", route="SL", frequency="QD")]
    receiving = [med("buprenorphine ", dose="8.0mg", route="sublingual", frequency="once daily")]
    assert compare(sending, receiving, moud()) == []


def test_a_value_missing_on_the_receiving_list_is_a_change() -> None:
    [d] = compare([med("sertraline", dose="50 mg")], [med("sertraline")])
    assert (d.kind, d.detail) == ("dose-change", "dose '50 mg' -> not stated")


def test_a_value_only_the_receiving_list_gives_is_not_a_change() -> None:
    assert compare([med("sertraline")], [med("sertraline", dose="50 mg")]) == []


def test_duplication_on_the_receiving_list_by_name_alias_and_code() -> None:
    receiving = [med("Suboxone"), med("buprenorphine-naloxone"), med("atorvastatin", rxnorm="83367")]
    receiving.append(med("Lipitor", rxnorm="83367"))
    found = compare([med("buprenorphine"), med("atorvastatin", rxnorm="83367")], receiving, moud())
    assert [(d.kind, d.detail) for d in found] == [
        ("duplication", "2 entries on the receiving list: 'atorvastatin', 'Lipitor'"),
        ("duplication", "2 entries on the receiving list: 'Suboxone', 'buprenorphine-naloxone'"),
    ]


def test_new_without_reason_is_a_commission_and_a_reason_clears_it() -> None:
    found = compare([], [med("quetiapine"), med("nicotine patch", reason="smoking cessation on the unit")])
    assert kinds(found) == [("new-without-reason", "quetiapine")]
    assert found[0].detail == "only on the receiving list, with no reason given"
    assert compare([], [med("trazodone", reason="   ")])[0].kind == "new-without-reason"


# ------------------------------------------------------------------------------------------------ matching


def test_matching_by_rxnorm_code_across_names() -> None:
    assert compare([med("atorvastatin", rxnorm="83367")], [med("Lipitor", rxnorm="83367")]) == []


def test_names_still_match_when_codes_differ() -> None:
    # Ingredient code on one list, a clinical-drug code on the other: the same drug, not an omission.
    assert compare([med("buprenorphine", rxnorm="1819")], [med("buprenorphine", rxnorm="351264")], moud()) == []


def test_dose_tokens_in_a_name_do_not_break_matching() -> None:
    assert compare([med("Atorvastatin 20 mg")], [med("atorvastatin")]) == []


def test_brand_alias_matches_the_generic() -> None:
    assert compare([med("Suboxone 8 mg/2 mg film")], [med("buprenorphine")], moud()) == []
    assert compare([med("Vivitrol")], [med("naltrexone")], moud()) == []


def test_brand_names_of_ordinary_drugs_are_not_guessed() -> None:
    # Only critical medications carry aliases; without codes, Lipitor and atorvastatin are different entries.
    assert kinds(compare([med("atorvastatin")], [med("Lipitor")])) == [
        ("omission", "atorvastatin"),
        ("new-without-reason", "Lipitor"),
    ]


# -------------------------------------------------------------------------------------- MOUD omission


@pytest.mark.parametrize(
    ("sending", "generic"),
    [
        (med("buprenorphine", dose="16 mg"), "buprenorphine"),  # by name
        (med("SUBOXONE"), "buprenorphine"),  # by brand alias, any case
        (med("Sublocade monthly injection"), "buprenorphine"),  # alias inside a longer name
        (med("buprenorphine-naloxone"), "buprenorphine"),  # inside a combination
        (med("clinic-dispensed opioid agonist", rxnorm="6813"), "methadone"),  # by RxNorm code only
        (med("Vivitrol", rxnorm="7243"), "naltrexone"),
    ],
)
def test_an_omitted_moud_is_critical(sending: Medication, generic: str) -> None:
    found = compare([med("sertraline"), sending], [med("sertraline")], moud())
    [d] = found
    assert (d.kind, d.critical, d.medication_class, d.key) == ("omission", True, "MOUD", f"omission:{generic}")
    assert d.detail == "on the sending list (MOUD), missing from the receiving list"
    assert needs_escalation(found) == [d]


def test_critical_discrepancies_come_first() -> None:
    found = compare([med("sertraline"), med("methadone", dose="60 mg")], [med("trazodone")], moud())
    assert kinds(found) == [("omission", "methadone"), ("omission", "sertraline"), ("new-without-reason", "trazodone")]


def test_critical_list_accepts_plan_dicts_specs_and_models() -> None:
    plan_form = [{"name": "methadone", "class": "MOUD", "rxnorm": ["6813"], "aliases": ["Methadose"]}]
    [from_dict] = critical_list(plan_form)
    assert from_dict == CriticalMedication(
        name="methadone", medication_class="MOUD", rxnorm=("6813",), aliases=("Methadose",)
    )
    assert critical_list(moud()) == list(moud())
    [d] = compare([med("Dolophine")], [], plan_form)  # the plan form lacks this alias...
    assert not d.critical
    [d] = compare([med("Dolophine")], [], moud())  # ...the seed pathway has it
    assert d.critical


# ---------------------------------------------------------------------------------------- clinician review


def test_marking_intentional_documents_it_and_stops_it_counting_as_an_error() -> None:
    found = compare([med("naltrexone", dose="380 mg", route="IM")], [med("sertraline")], moud())
    assert summary(found)["critical"] == 1
    marked = mark_intentional(found, "omission:naltrexone", "held before surgery; restart on day 3", by="CL-000042")
    d = next(d for d in marked if d.key == "omission:naltrexone")
    assert (d.status, d.reason, d.marked_by, d.critical, d.is_error) == (
        "intentional-documented",
        "held before surgery; restart on day 3",
        "CL-000042",
        True,
        False,
    )
    assert needs_escalation(marked) == []
    assert found[0].status == "unintentional"  # a new list; the old one is untouched
    assert summary(marked) == {
        "total": 2,
        "unintentional": 1,
        "intentional": 1,
        "critical": 0,
        "resolved": 0,
        "omission": 1,
        "dose-change": 0,
        "route-change": 0,
        "frequency-change": 0,
        "duplication": 0,
        "new-without-reason": 1,
    }


def test_marking_needs_a_known_key_a_reason_and_a_clinician() -> None:
    found = compare([med("sertraline")], [], moud())
    with pytest.raises(EventRejected, match=r"^no discrepancy 'omission:zoloft' .*\(known: omission:sertraline\)$"):
        mark_intentional(found, "omission:zoloft", "switched", by="CL-1")
    with pytest.raises(EventRejected, match="needs a reason"):
        mark_intentional(found, "omission:sertraline", " ", by="CL-1")
    with pytest.raises(EventRejected, match="which clinician"):
        mark_intentional(found, "omission:sertraline", "stopped", by="")


# ------------------------------------------------------------------------------------- lists sent again

SENT = [med("Suboxone", dose="16 mg"), med("atorvastatin", dose="20 mg"), med("sertraline", dose="50 mg")]


def test_a_mark_carries_over_while_the_finding_is_the_same() -> None:
    first = compare(SENT, [med("atorvastatin", dose="40 mg"), med("sertraline", dose="50 mg")], moud())
    marked = mark_intentional(first, "omission:buprenorphine", "taper agreed", by="CL-7")
    marked = mark_intentional(marked, "dose-change:atorvastatin", "raised on admission", by="CL-7")
    again = compare(SENT, [med("atorvastatin", dose="80 mg"), med("sertraline", dose="50 mg")], moud())
    carried = {d.key: d for d in carry_marks(marked, again)}
    assert (carried["omission:buprenorphine"].status, carried["omission:buprenorphine"].reason) == (
        "intentional-documented",
        "taper agreed",
    )
    assert carried["dose-change:atorvastatin"].status == "unintentional", "80 mg is a finding nobody reviewed"
    assert needs_escalation(carried.values()) == [], "a marked critical omission does not escalate again"


def test_a_new_comparison_supersedes_the_last_and_keeps_what_it_resolves() -> None:
    first = compare(SENT, [med("sertraline", dose="50 mg")], moud())
    marked = mark_intentional(first, "omission:atorvastatin", "stopped", by="CL-7")
    corrected = supersede(marked, compare(SENT, [*SENT[1:], med("buprenorphine", dose="16 mg")], moud()))
    assert [(d.key, d.status, d.reason) for d in corrected] == [
        ("omission:buprenorphine", "resolved", None),
        ("omission:atorvastatin", "resolved", "stopped"),  # the mark stays as history
    ]
    assert summary(corrected)["total"] == 0 and summary(corrected)["resolved"] == 2
    assert supersede(corrected, []) == corrected, "resolved stays resolved"
    again = supersede(corrected, first)
    assert [(d.key, d.status) for d in again] == [
        ("omission:buprenorphine", "unintentional"),
        ("omission:atorvastatin", "unintentional"),  # found again after resolution: nobody reviewed it
    ]
    with pytest.raises(EventRejected, match="'omission:buprenorphine' is resolved"):
        mark_intentional(corrected, "omission:buprenorphine", "why", by="CL-7")


def test_only_a_critical_error_that_was_not_one_before_escalates() -> None:
    omitted = compare(SENT, [med("sertraline", dose="50 mg")], moud())
    assert [d.key for d in newly_critical([], omitted)] == ["omission:buprenorphine"]
    assert newly_critical(omitted, supersede(omitted, omitted)) == [], "the same finding again: alerted already"
    marked = mark_intentional(omitted, "omission:buprenorphine", "taper agreed", by="CL-7")
    assert newly_critical(marked, supersede(marked, omitted)) == []
    both = compare([*SENT, med("methadone", dose="60 mg")], [med("sertraline", dose="50 mg")], moud())
    assert [d.key for d in newly_critical(marked, supersede(marked, both))] == ["omission:methadone"]
    restored = supersede(omitted, [])
    assert [d.key for d in newly_critical(restored, supersede(restored, omitted))] == ["omission:buprenorphine"]


def test_keys_stay_unique_when_a_drug_repeats() -> None:
    found = compare([med("sertraline"), med("Sertraline")], [], moud())
    assert [d.key for d in found] == ["omission:sertraline", "omission:sertraline#2"]


# ---------------------------------------------------------------------------------------------- output


def test_table_rows_carry_findings_and_nothing_about_the_person() -> None:
    found = compare([med("Suboxone", dose="8 mg")], [med("quetiapine")], moud())
    rows = table_rows(found)
    assert rows[0] == {
        "medication": "Suboxone",
        "class": "MOUD",
        "kind": "omission",
        "critical": "yes",
        "detail": "on the sending list (MOUD), missing from the receiving list",
        "status": "unintentional",
        "reason": "",
        "marked by": "",
        "key": "omission:buprenorphine",
    }
    assert [r["kind"] for r in rows] == ["omission", "new-without-reason"]
    assert set(summary(found)) == {"total", "unintentional", "intentional", "critical", "resolved", *KINDS}
