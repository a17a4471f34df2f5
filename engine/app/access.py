"""Who may do what over the network: each token's role allows a fixed set of actions, and a receiver's token is
further confined to the handoffs addressed to its program.

The rules live here, in the application layer, so that every face asks the same question: the HTTP handlers only
name the action they serve. A role that may not do an action at all is :class:`~engine.errors.Forbidden` (the
answer is the same for every object); an object outside the token's scope is :class:`~engine.errors.NotFound`,
the same answer as an object that does not exist, so a refusal never tells anyone that it exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import Forbidden

__all__ = ["PERMISSIONS", "Principal", "require", "sees_person_ids"]


@dataclass(frozen=True)
class Principal:
    """Whoever presented a valid token: its label is the actor the audit trail records for every write."""

    token_id: str
    label: str
    role: str
    program: str | None = None


_ALL = frozenset({"coordinator", "receiver", "operator", "auditor"})
_COORDINATOR = frozenset({"coordinator"})

#: action -> the roles that may take it. Coordinators do everything about this store's episodes; receivers read
#: and move their program's handoffs; operators read without person ids; auditors read the disclosure accounting.
PERMISSIONS: dict[str, frozenset[str]] = {
    "enroll": _COORDINATOR,
    "event": _COORDINATOR,
    "authorization": _COORDINATOR,
    "consent": _COORDINATOR,
    "revoke": _COORDINATOR,
    "medications": _COORDINATOR,
    "intentional": _COORDINATOR,
    "acknowledge": _COORDINATOR,
    "patient": _COORDINATOR,
    "status": frozenset({"coordinator", "operator"}),
    "caseload": frozenset({"coordinator", "operator"}),
    "discrepancies": frozenset({"coordinator", "operator"}),
    "care-plan": frozenset({"coordinator", "operator"}),
    "disclosures": frozenset({"coordinator", "auditor"}),
    "consents": frozenset({"coordinator", "auditor"}),
    "handoffs": frozenset({"coordinator", "receiver", "operator"}),
    "move-handoff": frozenset({"coordinator", "receiver"}),
    "organizations": _ALL,
}


def require(principal: Principal, action: str) -> Principal:
    """``principal`` if its role may take ``action``; else :class:`Forbidden` (one line, names the role)."""
    if principal.role not in PERMISSIONS[action]:
        raise Forbidden(f"a {principal.role} token may not {action.replace('-', ' ')}")
    return principal


def sees_person_ids(principal: Principal) -> bool:
    """Only coordinators see the person's program id (operators and receivers see opaque ids only)."""
    return principal.role == "coordinator"
