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
(``--by``), consent, episode, token                     first (``P-000123``, ``cn-2026-0042``)
event id (``--id``), ``Idempotency-Key``        1-128   the same (room for a UUID or an HL7 message id)
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
- a pathway parameter (``--param``): a duration up to :data:`engine.language.durations.MAX_DURATION` (ten years).
"""

from engine.app.inputs.consent import EXPIRY_AHEAD, check_consent, consent_from_form
from engine.app.inputs.ids import check_escalation, check_id
from engine.app.inputs.text import NAME_MAX, TEXT_MAX, check_text
from engine.app.inputs.times import APPOINTMENT, ENROLLMENT, SIGNED, Window, check_time, parse_date, parse_time
from engine.app.inputs.values import (
    DATE_SPAN,
    LIST_MAX,
    NUMBER_MAX,
    check_facts,
    check_params,
    check_payload,
    check_value,
)

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
