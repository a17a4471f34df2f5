"""Free text and names: not blank, not too long, nothing unprintable (a name also on one line), so what people
type can be stored, shown in a terminal and logged without a control character changing what others see.
"""

from __future__ import annotations

import unicodedata

from engine.errors import InvalidInput, quote

__all__ = ["NAME_MAX", "TEXT_MAX", "check_text"]

TEXT_MAX = 2_000
NAME_MAX = 200


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
