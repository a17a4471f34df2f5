"""Recording a contact with a person (a call, a visit, a message left): a coordinator's note in the audit trail.

A contact changes no episode state and meets no deadline (a pathway's ``contact.made`` event does that); it says
that someone reached out, so the next coordinator to open the episode sees it in ``carepath status`` and on the
episode page. The note is free text and stays in the store, like every note people type (never sent to Prefect).
"""

from __future__ import annotations

from engine import store
from engine.app import inputs
from engine.app.access import Principal, require
from engine.app.context import App
from engine.errors import UnknownEpisode, quote

__all__ = ["CONTACT_ACTION", "NOTE_MAX", "record_contact", "record_contact_as"]

#: The audit trail's action for a contact.
CONTACT_ACTION = "contact.recorded"
#: A contact note is one line, as long as a short paragraph.
NOTE_MAX = 500


def record_contact(app: App, episode_id: str, note: str, *, actor: str) -> None:
    """Append a contact to the episode's audit trail, ``note`` as its reason and ``actor`` (a token's label, or
    the person at the CLI) as who recorded it. Refused, changing nothing, for a note that is not one line of
    printable text of at most :data:`NOTE_MAX` characters, or an unknown episode."""
    inputs.check_id("episode id", episode_id)
    text = inputs.check_text("note", note, limit=NOTE_MAX, one_line=True).strip()
    now = app.clock.now()
    with store.session_scope(app.engine) as session:
        episode = session.get(store.EpisodeRecord, episode_id)
        if episode is None:
            raise UnknownEpisode(f"no episode {quote(episode_id)}")
        store.audit(session, episode_id, now, actor, CONTACT_ACTION, {"stage": episode.stage}, reason=text)


def record_contact_as(app: App, principal: Principal, episode_id: str, note: str) -> None:
    """:func:`record_contact` for a network caller: coordinators only, the token's label as the actor."""
    require(principal, "contact")
    record_contact(app, episode_id, note, actor=principal.label)
