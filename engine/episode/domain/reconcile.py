"""Medication reconciliation at a transition: compare the sending and receiving lists and classify what differs.

Pure. Kinds (after the reconciliation literature in ``shared/domain.md``):

- ``omission``: on the sending list, missing from the receiving list. An omitted critical medication (MOUD:
  buprenorphine, methadone, naltrexone, as the pathway lists them) is ``critical``, the most severe discrepancy;
- ``dose-change``, ``route-change``, ``frequency-change``: the same drug with a different value (a value the
  receiving list leaves out counts as different: an order without a dose is not a safe order);
- ``duplication``: the same drug twice on the receiving list;
- ``new-without-reason`` (commission): only on the receiving list, with no reason given.

Two entries are the same drug when their RxNorm codes are equal, or when their normalized names are: case and
spacing ignored, dose tokens dropped ("Atorvastatin 20 mg"), brand names of critical medications mapped to the
generic (Suboxone -> buprenorphine), and a critical name found inside a combination ("buprenorphine-naloxone").
Names count even when both codes are given and differ, because RxNorm has several codes per drug (ingredient,
clinical and branded drug): a code mismatch alone must never turn a continued MOUD into a false "omitted".

Every discrepancy starts ``unintentional`` (an error) until a clinician marks it ``intentional-documented`` with
a reason (:func:`mark_intentional`); only unintentional ones count as errors.

Lists are sent again (a corrected admission list, a late discharge list): each new comparison supersedes the
last (:func:`supersede`). A mark carries over while the finding is the same (:func:`carry_marks`), a finding no
longer found is kept as ``resolved`` (history, never deleted), and only a critical error that was not one before
escalates (:func:`newly_critical`), so a clinician's mark or an alert already raised is never undone by a re-send.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import EventRejected

__all__ = [
    "INTENTIONAL",
    "KINDS",
    "RESOLVED",
    "CriticalMedication",
    "Discrepancy",
    "DiscrepancyKind",
    "DiscrepancyStatus",
    "Medication",
    "carry_marks",
    "compare",
    "critical_list",
    "mark_intentional",
    "needs_escalation",
    "newly_critical",
    "summary",
    "supersede",
    "table_rows",
]

DiscrepancyKind = Literal[
    "omission", "dose-change", "route-change", "frequency-change", "duplication", "new-without-reason"
]
KINDS: tuple[str, ...] = get_args(DiscrepancyKind)
#: ``resolved``: a later comparison no longer finds it; kept so the history shows what was wrong and when
DiscrepancyStatus = Literal["unintentional", "intentional-documented", "resolved"]
INTENTIONAL = "intentional-documented"
RESOLVED = "resolved"


class Medication(BaseModel):
    """One line of a medication list. ``reason`` explains a drug started at this setting."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    rxnorm: str | None = None
    dose: str | None = None
    route: str | None = None
    frequency: str | None = None
    reason: str | None = None


class CriticalMedication(BaseModel):
    """A medication whose omission is critical, as a pathway's ``medications.critical`` lists it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    medication_class: str = Field(alias="class")
    rxnorm: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


class Discrepancy(BaseModel):
    """A difference between the lists; ``key`` is stable, so a clinician can mark it."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: DiscrepancyKind
    medication: str
    detail: str
    critical: bool = False
    medication_class: str | None = None
    status: DiscrepancyStatus = "unintentional"
    reason: str | None = None
    marked_by: str | None = None

    @property
    def is_error(self) -> bool:
        return self.status == "unintentional"


def critical_list(items: Iterable[CriticalMedication | Mapping[str, Any] | Any]) -> list[CriticalMedication]:
    """Critical medications from a plan's ``critical_medications`` dicts, ``CriticalMedicationSpec``s or models."""
    out: list[CriticalMedication] = []
    for item in items:
        if isinstance(item, CriticalMedication):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(CriticalMedication.model_validate(dict(item)))
        else:
            out.append(
                CriticalMedication(
                    name=item.name,
                    medication_class=item.medication_class,
                    rxnorm=tuple(item.rxnorm),
                    aliases=tuple(item.aliases),
                )
            )
    return out


# --------------------------------------------------------------------------------------------------- matching

_UNITS = {"mg", "mcg", "g", "ml", "unit", "units", "iu", "meq", "%"}
_ROUTES = {
    "po": "oral",
    "by mouth": "oral",
    "oral": "oral",
    "sl": "sublingual",
    "sublingual": "sublingual",
    "buccal": "buccal",
    "im": "intramuscular",
    "intramuscular": "intramuscular",
    "iv": "intravenous",
    "intravenous": "intravenous",
    "sc": "subcutaneous",
    "sq": "subcutaneous",
    "subq": "subcutaneous",
    "subcut": "subcutaneous",
    "subcutaneous": "subcutaneous",
    "td": "transdermal",
    "transdermal": "transdermal",
}
_FREQUENCIES = {
    "qd": "daily",
    "daily": "daily",
    "once daily": "daily",
    "once a day": "daily",
    "every day": "daily",
    "bid": "twice daily",
    "twice daily": "twice daily",
    "twice a day": "twice daily",
    "tid": "three times daily",
    "three times daily": "three times daily",
    "three times a day": "three times daily",
    "qid": "four times daily",
    "four times daily": "four times daily",
    "qhs": "at bedtime",
    "at bedtime": "at bedtime",
    "prn": "as needed",
    "as needed": "as needed",
    "weekly": "weekly",
    "once weekly": "weekly",
    "qw": "weekly",
    "monthly": "monthly",
    "once monthly": "monthly",
    "every 4 weeks": "monthly",
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9%]+(?:\.[0-9]+)?", text.casefold())


@lru_cache(maxsize=4096)  # a pathway's few names, compared on every reconciliation: the regex work once per name
def _name_key(name: str) -> str:
    """Case, spacing, punctuation and dose tokens ignored: 'Atorvastatin 20 mg' -> 'atorvastatin'."""
    words = [w for w in _words(name) if w not in _UNITS and not any(ch.isdigit() for ch in w)]
    return " ".join(words) or " ".join(_words(name))


def _dose_key(dose: str) -> str:
    text = re.sub(r"\s+", "", dose.casefold())
    return re.sub(r"(\d+)\.0+(?!\d)", r"\1", text)


def _phrase_key(value: str, table: dict[str, str]) -> str:
    text = " ".join(_words(value.replace(".", "")))
    return table.get(text, text)


class _Index:
    """Maps codes and names (generic, brand, inside combinations) to a critical medication."""

    def __init__(self, critical: Iterable[CriticalMedication]) -> None:
        self.by_code: dict[str, CriticalMedication] = {}
        self.by_name: dict[str, CriticalMedication] = {}
        for med in critical:
            for code in med.rxnorm:
                self.by_code[code.strip()] = med
            for name in (med.name, *med.aliases):
                self.by_name[_name_key(name)] = med
        self.names = sorted(self.by_name, key=len, reverse=True)

    def critical(self, med: Medication) -> CriticalMedication | None:
        if med.rxnorm and med.rxnorm.strip() in self.by_code:
            return self.by_code[med.rxnorm.strip()]
        key = _name_key(med.name)
        if key in self.by_name:
            return self.by_name[key]
        padded = f" {key} "
        return next((self.by_name[n] for n in self.names if f" {n} " in padded), None)

    def identity(self, med: Medication) -> str:
        found = self.critical(med)
        return _name_key(found.name) if found else _name_key(med.name)

    def same(self, a: Medication, b: Medication) -> bool:
        if a.rxnorm and b.rxnorm and a.rxnorm.strip() == b.rxnorm.strip():
            return True
        return self.identity(a) == self.identity(b)


# ---------------------------------------------------------------------------------------------------- compare

_ORDER = {kind: n for n, kind in enumerate(KINDS)}
_FIELDS: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("dose-change", "dose", _dose_key),
    ("route-change", "route", lambda v: _phrase_key(v, _ROUTES)),
    ("frequency-change", "frequency", lambda v: _phrase_key(v, _FREQUENCIES)),
)


def _show(value: str | None) -> str:
    return f"'{value}'" if value else "not stated"


def compare(
    sending: Iterable[Medication],
    receiving: Iterable[Medication],
    critical: Iterable[CriticalMedication | Mapping[str, Any] | Any] = (),
) -> list[Discrepancy]:
    """Every discrepancy between the sending list and the receiving list, critical first."""
    index = _Index(critical_list(critical))
    sent, got = list(sending), list(receiving)
    found: list[Discrepancy] = []
    keys: dict[str, int] = {}

    def add(kind: str, med: Medication, detail: str, critical: bool = False) -> None:
        base = f"{kind}:{index.identity(med)}"
        keys[base] = keys.get(base, 0) + 1
        crit = index.critical(med)
        found.append(
            Discrepancy(
                key=base if keys[base] == 1 else f"{base}#{keys[base]}",
                kind=kind,
                medication=med.name,
                detail=detail,
                critical=critical,
                medication_class=crit.medication_class if crit else None,
            )
        )

    matched: set[int] = set()
    for med in sent:
        hits = [n for n, r in enumerate(got) if index.same(med, r)]
        matched.update(hits)
        if not hits:
            crit = index.critical(med)
            what = f" ({crit.medication_class})" if crit else ""
            add("omission", med, f"on the sending list{what}, missing from the receiving list", critical=bool(crit))
            continue
        other = got[hits[0]]
        for kind, field, norm in _FIELDS:
            was, now = getattr(med, field), getattr(other, field)
            if was and norm(was) != norm(now or ""):
                add(kind, med, f"{field} {_show(was)} -> {_show(now)}")

    groups: list[list[int]] = []
    for n, med in enumerate(got):
        group = next((g for g in groups if any(index.same(got[m], med) for m in g)), None)
        if group is None:
            groups.append([n])
        else:
            group.append(n)
    for group in groups:
        if len(group) > 1:
            names = ", ".join(f"'{got[m].name}'" for m in group)
            add("duplication", got[group[0]], f"{len(group)} entries on the receiving list: {names}")

    for n, med in enumerate(got):
        if n not in matched and not (med.reason and med.reason.strip()):
            add("new-without-reason", med, "only on the receiving list, with no reason given")

    return sorted(found, key=lambda d: (not d.critical, _ORDER[d.kind], d.medication.casefold(), d.key))


# ------------------------------------------------------------------------------------------- review and output


def mark_intentional(discrepancies: Iterable[Discrepancy], key: str, reason: str, by: str) -> list[Discrepancy]:
    """A new list with discrepancy ``key`` marked intentional by clinician ``by`` (an opaque id) for ``reason``."""
    items = list(discrepancies)
    if not reason or not reason.strip():
        raise EventRejected(f"discrepancy '{key}': marking it intentional needs a reason")
    if not by or not by.strip():
        raise EventRejected(f"discrepancy '{key}': say which clinician marks it intentional")
    current = [d for d in items if d.status != RESOLVED]
    if not any(d.key == key for d in current):
        if any(d.key == key for d in items):
            raise EventRejected(f"discrepancy '{key}' is resolved: the lists no longer differ there")
        known = ", ".join(d.key for d in current) or "none"
        raise EventRejected(f"no discrepancy '{key}' in this reconciliation (known: {known})")
    update = {"status": INTENTIONAL, "reason": reason.strip(), "marked_by": by.strip()}
    return [d.model_copy(update=update) if d.key == key else d for d in items]


def needs_escalation(discrepancies: Iterable[Discrepancy]) -> list[Discrepancy]:
    """Critical discrepancies nobody has documented as intentional: these escalate at once."""
    return [d for d in discrepancies if d.critical and d.is_error]


def carry_marks(previous: Iterable[Discrepancy], found: Iterable[Discrepancy]) -> list[Discrepancy]:
    """``found`` with each clinician's mark from ``previous`` carried over, by key (kind and drug).

    A mark documents one finding: it carries over only while ``detail`` is unchanged (a dose changed again is a
    new finding nobody has reviewed). A resolved finding carries no mark: found again, it is an error again.
    """
    marks = {d.key: d for d in previous if d.status == INTENTIONAL}
    out = []
    for d in found:
        mark = marks.get(d.key)
        if mark is not None and mark.detail == d.detail:
            d = d.model_copy(update={"status": mark.status, "reason": mark.reason, "marked_by": mark.marked_by})
        out.append(d)
    return out


def supersede(previous: Iterable[Discrepancy], found: Iterable[Discrepancy]) -> list[Discrepancy]:
    """The visit's findings once a new comparison (``found``) replaces ``previous``: the new findings with their
    marks carried over, then every earlier finding no longer found, as ``resolved`` (its mark kept as history)."""
    before = list(previous)
    current = carry_marks(before, found)
    keys = {d.key for d in current}
    gone = [d if d.status == RESOLVED else d.model_copy(update={"status": RESOLVED}) for d in before]
    return current + [d for d in gone if d.key not in keys]


def newly_critical(previous: Iterable[Discrepancy], current: Iterable[Discrepancy]) -> list[Discrepancy]:
    """Critical errors in ``current`` that ``previous`` did not hold as critical errors: only these escalate.

    One still found after a re-send was alerted already; one marked intentional does not escalate; one found
    again after it was resolved is new.
    """
    alerted = {d.key for d in needs_escalation(previous)}
    return [d for d in needs_escalation(current) if d.key not in alerted]


def summary(discrepancies: Iterable[Discrepancy]) -> dict[str, int]:
    """Counts of the current findings: ``total``, ``unintentional`` (errors), ``intentional``, ``critical``
    (unintentional), per kind; and ``resolved``, the earlier findings no longer found."""
    everything = list(discrepancies)
    items = [d for d in everything if d.status != RESOLVED]
    out = {
        "total": len(items),
        "unintentional": sum(d.is_error for d in items),
        "intentional": sum(not d.is_error for d in items),
        "critical": len(needs_escalation(items)),
        "resolved": len(everything) - len(items),
    }
    for kind in KINDS:
        out[kind] = sum(d.kind == kind for d in items)
    return out


def table_rows(discrepancies: Iterable[Discrepancy]) -> list[dict[str, str]]:
    """Rows for a Prefect table artifact: medication names and findings only, nothing about the person."""
    return [
        {
            "medication": d.medication,
            "class": d.medication_class or "",
            "kind": d.kind,
            "critical": "yes" if d.critical else "no",
            "detail": d.detail,
            "status": d.status,
            "reason": d.reason or "",
            "marked by": d.marked_by or "",
            "key": d.key,
        }
        for d in discrepancies
    ]
