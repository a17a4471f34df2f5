"""Meaning check: every stage ``level`` is an ASAM Criteria level code of the pathway's ``asam_edition``.

3rd edition (2013): 0.5, 1, 2.1, 2.5, 3.1, 3.3, 3.5, 3.7, 4, the withdrawal management levels 1-WM, 2-WM, 3.2-WM,
3.7-WM, 4-WM, and OTP (opioid treatment program). 4th edition (2023): 1.0, 1.5, 1.7, 2.1, 2.5, 2.7, 3.1, 3.5, 3.7,
4.0 (withdrawal management folded into 1.7, 2.7, 3.7 and 4.0). The 4th edition list follows ``shared/domain.md``
(marked *unverified* there) and the ASAM Criteria 4th edition's continuum of care; revise it here if a program
shows a code it uses.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Finding
from engine.language.model import PathwaySpec
from engine.language.suggest import hint

__all__ = ["LEVELS", "check_levels"]

#: The level codes of each edition, in the order the Criteria list them.
LEVELS: dict[int, tuple[str, ...]] = {
    3: ("0.5", "1", "2.1", "2.5", "3.1", "3.3", "3.5", "3.7", "4", "1-WM", "2-WM", "3.2-WM", "3.7-WM", "4-WM", "OTP"),
    4: ("1.0", "1.5", "1.7", "2.1", "2.5", "2.7", "3.1", "3.5", "3.7", "4.0"),
}


def check_levels(spec: PathwaySpec) -> Iterator[Finding]:
    known = LEVELS[spec.asam_edition]
    for i, stage in enumerate(spec.stages):
        if stage.level is not None and stage.level not in known:
            yield Finding(
                ("stages", i, "level"),
                f"'{stage.level}' is not an ASAM level of edition {spec.asam_edition}"
                f"{hint(stage.level, known, cutoff=0.5) or ' (' + ', '.join(known) + ')'}",
            )
