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


_COORDINATOR = frozenset({"coordinator"})

#: action -> (the roles that may take it, what it is). Coordinators do everything about this store's episodes;
#: receivers read and move their program's handoffs; operators read without person ids; auditors read consents
#: and the disclosure accounting.
PERMISSIONS: dict[str, tuple[frozenset[str], str]] = {
    "enroll": (_COORDINATOR, "enroll people"),
    "event": (_COORDINATOR, "record events"),
    "authorization": (_COORDINATOR, "record authorizations"),
    "consent": (_COORDINATOR, "record consents"),
    "revoke": (_COORDINATOR, "revoke consents"),
    "medications": (_COORDINATOR, "record medication lists"),
    "intentional": (_COORDINATOR, "mark discrepancies intentional"),
    "acknowledge": (_COORDINATOR, "acknowledge escalations"),
    "patient": (_COORDINATOR, "read patients"),
    "worklist": (_COORDINATOR, "use the coordinators' worklist"),
    "contact": (_COORDINATOR, "record contacts"),
    "lookup": (_COORDINATOR, "look people up by program id"),
    "status": (frozenset({"coordinator", "operator"}), "read episodes"),
    "caseload": (frozenset({"coordinator", "operator"}), "read the caseload"),
    "discrepancies": (frozenset({"coordinator", "operator"}), "read medication findings"),
    "care-plan": (frozenset({"coordinator", "operator"}), "read care plans"),
    "disclosures": (frozenset({"coordinator", "auditor"}), "read disclosures"),
    "consents": (frozenset({"coordinator", "auditor"}), "read consents"),
    "handoffs": (frozenset({"coordinator", "receiver", "operator"}), "read handoffs"),
    "move-handoff": (frozenset({"coordinator", "receiver"}), "move handoffs"),
}


def require(principal: Principal, action: str) -> Principal:
    """``principal`` if its role may take ``action``; else :class:`Forbidden` (one line, names the role)."""
    roles, what = PERMISSIONS[action]
    if principal.role not in roles:
        raise Forbidden(f"{principal.role} tokens may not {what}")
    return principal


def sees_person_ids(principal: Principal) -> bool:
    """Only coordinators see the person's program id (operators and receivers see opaque ids only)."""
    return principal.role == "coordinator"
