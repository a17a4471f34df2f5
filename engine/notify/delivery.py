"""Escalation messages, and their delivery to a role's contacts through apprise.

An escalation leaves Carepath, so it carries nothing about the person: :func:`escalation_notification` takes
only opaque ids (episode, rung), pathway and stage ids, the work's title as the pathway writes it, the rung, the
role and the due time, and points at ``carepath status <episode>`` for the rest (which stays behind the
program's own access control). Its arguments are the whole vocabulary of a message; there is no free-form field.

:func:`deliver` sends one notification to each contact separately (one bad contact never hides another),
retries the failed ones in rounds with backoff, and never raises for a failed delivery: it returns a
:class:`DeliveryReport` with one :class:`DeliveryOutcome` per contact, which the caller stores (this module does
no persistence). A contact whose :func:`delivery_key` the caller already recorded as delivered is skipped, so a
re-fired rung or a retried task does not alert people twice. Failures are logged at WARNING with the redacted
URL; the URL itself is never logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from engine.notify.apprise_io import AppriseLog, apprise_module, scrub
from engine.notify.roster import Contact, Roster, load_roster

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF",
    "DeliveryOutcome",
    "DeliveryReport",
    "DeliveryStatus",
    "Notification",
    "RosterNotifier",
    "deliver",
    "delivery_key",
    "escalation_notification",
]

logger = logging.getLogger("carepath.notify")

DEFAULT_ATTEMPTS = 3
#: Seconds to wait before the 2nd, 3rd, ... attempt (the last value repeats if there are more attempts).
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 5.0, 25.0)
_REASON_LIMIT = 200

#: ``delivered``: sent now; ``skipped``: the caller had it delivered already; ``failed``: every attempt failed;
#: ``no-contact``: the role reaches nobody (no roster, or no contact and no fallback).
DeliveryStatus = Literal["delivered", "failed", "skipped", "no-contact"]

# Opaque ids and pathway ids: no spaces and no '@', so neither a name nor an e-mail address fits.
_OPAQUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,199}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Notification:
    """What an alert says (``title``, ``body``) and what it is about (ids only)."""

    title: str
    body: str
    episode_id: str
    role: str
    rung_id: str
    tags: tuple[str, ...] = ()
    severity: str = "normal"


def escalation_notification(
    *,
    episode_id: str,
    pathway_id: str,
    stage_id: str | None,
    work_title: str,
    rung_id: str,
    rung_index: int,
    role: str,
    due_at: datetime,
    tags: Sequence[str] = (),
    severity: str = "normal",
) -> Notification:
    """The message for an escalation rung that fired: who must act, on which work, overdue since when.

    Ids must be opaque tokens (letters, digits, ``. _ : / # + -``); a value with spaces or ``@`` is refused with
    ``ValueError``, so a name or an address cannot slip into a message through an id. A ``critical`` escalation
    (an omitted MOUD) says so first in its title.
    """
    for name, value in [("episode_id", episode_id), ("pathway_id", pathway_id), ("rung_id", rung_id), ("role", role)]:
        _check_opaque(name, value)
    if stage_id is not None:
        _check_opaque("stage_id", stage_id)
    for tag in tags:
        _check_opaque("tag", tag)
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    title_text = _one_line(work_title)
    due = due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = f"Episode {episode_id} · pathway {pathway_id}" + (f" · stage {stage_id}" if stage_id else "")
    lines = [
        f"{title_text}: due {due}, not done.",
        where,
        f"Escalation rung {rung_index + 1} to {role} ({rung_id})",
        f"See `carepath status {episode_id}`.",
    ]
    if tags:
        lines.append("Tags: " + ", ".join(tags))
    if severity == "critical":
        lines[0] = f"CRITICAL: {title_text}. Act now."
    elif severity == "high":
        lines[0] = f"{title_text}: needs attention."
    prefix = {"critical": "Carepath CRITICAL alert", "high": "Carepath alert"}.get(severity, "Carepath escalation")
    tail = "" if severity in ("critical", "high") else " overdue"
    return Notification(
        title=f"{prefix}: {title_text}{tail} ({episode_id})",
        body="\n".join(lines),
        episode_id=episode_id,
        role=role,
        rung_id=rung_id,
        tags=tuple(tags),
        severity=severity,
    )


def _check_opaque(name: str, value: str) -> None:
    if not isinstance(value, str) or not _OPAQUE.fullmatch(value):
        raise ValueError(f"{name} must be an opaque id (letters, digits, . _ : / # + -), got {value!r}")


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()[:200]


# -- delivery -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened for one contact; the fields a delivery record in the store needs."""

    key: str
    rung_id: str
    role: str
    contact_label: str | None
    redacted_url: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """Every contact's outcome for one notification."""

    rung_id: str
    episode_id: str
    role: str
    outcomes: tuple[DeliveryOutcome, ...]

    @property
    def reached(self) -> bool:
        """At least one contact has the message (sent now or recorded as sent before)."""
        return any(o.status in ("delivered", "skipped") for o in self.outcomes)

    @property
    def failed(self) -> list[DeliveryOutcome]:
        """Outcomes that need someone's attention: failed deliveries and a role that reaches nobody."""
        return [o for o in self.outcomes if o.status in ("failed", "no-contact")]

    def summary(self) -> str:
        """One line for an audit entry or a log, with redacted URLs only."""
        sent = sum(o.status in ("delivered", "skipped") for o in self.outcomes)
        contacts = [o for o in self.outcomes if o.status != "no-contact"]
        if not contacts:
            return f"escalation to {self.role} reached nobody: {self.outcomes[0].last_error}"
        text = f"escalation to {self.role}: delivered to {sent} of {len(contacts)} contacts"
        failures = [f"{o.key} <{o.redacted_url}> after {o.attempts} attempts: {o.last_error}" for o in self.failed]
        return text + ("; failed: " + "; ".join(failures) if failures else "")


def delivery_key(rung_id: str, contact: Contact) -> str:
    """The idempotency key of delivering rung ``rung_id`` to ``contact``: ``<rung id>@<role>[<index>]``."""
    return f"{rung_id}@{contact.key}"


def deliver(
    notification: Notification,
    contacts: Sequence[Contact],
    *,
    now: Callable[[], datetime],
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    already_delivered: Collection[str] = (),
    on_outcome: Callable[[DeliveryOutcome], None] | None = None,
) -> DeliveryReport:
    """Send ``notification`` to each contact, retrying failures; never raises because a delivery failed.

    Attempts go in rounds: every pending contact is tried, then ``sleep(backoff[n])`` (real seconds, whatever
    the pathway clock) before the failed ones are tried again, up to ``attempts`` tries each. A URL apprise
    cannot read fails at once (retrying cannot help). ``now`` stamps ``delivered_at``; keys in
    ``already_delivered`` are reported ``skipped`` and not sent again. ``on_outcome`` is called as soon as each
    contact's outcome is final (so a caller can store it before slower contacts finish).
    """

    def final(key: str, outcome: DeliveryOutcome) -> None:
        outcomes[key] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    rung, done = notification.rung_id, set(already_delivered)
    if not contacts:
        reason = f"no contact for role '{notification.role}' in the roster"
        logger.warning("escalation %s: %s; nobody was alerted", rung, reason)
        outcome = DeliveryOutcome(f"{rung}@-", rung, notification.role, None, "", "no-contact", 0, reason)
        if on_outcome is not None:
            on_outcome(outcome)
        return DeliveryReport(rung, notification.episode_id, notification.role, (outcome,))

    outcomes: dict[str, DeliveryOutcome] = {}
    tries: dict[str, int] = {}
    errors: dict[str, str] = {}
    pending: list[Contact] = []
    for contact in contacts:
        key = delivery_key(rung, contact)
        if key in done:
            final(key, _outcome(key, rung, contact, "skipped", 0))
        else:
            pending.append(contact)
            tries[key] = 0

    for attempt in range(1, attempts + 1):
        if not pending:
            break
        if attempt > 1:
            sleep(_wait(backoff, attempt - 1))
        still: list[Contact] = []
        for contact in pending:
            key = delivery_key(rung, contact)
            tries[key] += 1
            sent, reason, permanent = _send(notification, contact)
            if sent:
                final(key, _outcome(key, rung, contact, "delivered", tries[key], delivered_at=now()))
                continue
            errors[key] = reason
            if permanent or attempt == attempts:
                final(key, _outcome(key, rung, contact, "failed", tries[key], last_error=reason))
                logger.warning(
                    "escalation %s: delivery to %s <%s> failed after %d attempt(s): %s",
                    *(rung, contact.key, contact.redacted, tries[key], reason),
                )
            else:
                still.append(contact)
                logger.info(
                    "escalation %s: attempt %d to %s <%s> failed: %s",
                    *(rung, attempt, contact.key, contact.redacted, reason),
                )
        pending = still

    ordered = tuple(outcomes[delivery_key(rung, c)] for c in contacts)
    return DeliveryReport(rung, notification.episode_id, notification.role, ordered)


def _wait(backoff: Sequence[float], retry: int) -> float:
    """Seconds before retry number ``retry`` (1-based)."""
    return float(backoff[min(retry, len(backoff)) - 1]) if backoff else 0.0


def _outcome(
    key: str,
    rung: str,
    contact: Contact,
    status: DeliveryStatus,
    attempts: int,
    *,
    last_error: str | None = None,
    delivered_at: datetime | None = None,
) -> DeliveryOutcome:
    return DeliveryOutcome(
        key, rung, contact.role, contact.label, contact.redacted, status, attempts, last_error, delivered_at
    )


def _send(notification: Notification, contact: Contact) -> tuple[bool, str, bool]:
    """One try: (sent, reason if not, whether retrying is pointless). apprise's own logging is kept quiet."""
    apprise = apprise_module()
    with AppriseLog() as log:
        try:
            client = apprise.Apprise()
            if not client.add(contact.url):
                return False, "apprise cannot read this URL", True
            sent = bool(
                client.notify(
                    title=notification.title,
                    body=notification.body,
                    notify_type=apprise.NotifyType.FAILURE
                    if notification.severity == "critical"
                    else apprise.NotifyType.WARNING,
                    body_format=apprise.NotifyFormat.TEXT,
                )
            )
        except Exception as exc:  # a plugin error is a failed delivery, never a crash of the caller
            sent, log.messages = False, [*log.messages, f"{type(exc).__name__}: {exc}"]
    if sent:
        return True, "", False
    reason = log.messages[0] if log.messages else "apprise reported a failure"
    return False, scrub(_one_line(reason), contact.url)[:_REASON_LIMIT], False


class RosterNotifier:
    """The notifier port over a roster file: a role's contacts get the alert through apprise.

    The roster is loaded once, on first use. With no roster at all, every escalation is recorded as reaching
    nobody (``no-contact``, "no roster is configured"), so it still shows as undelivered rather than vanishing.
    """

    def __init__(self, path: Path | None, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self._roster: Roster | None = None
        self._lock = threading.Lock()

    def roster(self) -> Roster | None:
        """The roster, loaded on first use (a bad one raises :class:`~engine.notify.roster.RosterError`)."""
        with self._lock:
            if self._roster is None and self.path is not None:
                self._roster = load_roster(self.path, env=self.env)
        return self._roster

    def deliver(
        self,
        notification: Notification,
        *,
        already_delivered: set[str],
        on_outcome: Callable[[DeliveryOutcome], None],
    ) -> DeliveryReport:
        roster = self.roster()
        if roster is None:
            rung, role = notification.rung_id, notification.role
            reason = "no roster is configured: nobody was alerted"
            logger.warning("escalation %s: %s", rung, reason)
            outcome = DeliveryOutcome(f"{rung}@-", rung, role, None, "", "no-contact", 0, reason)
            on_outcome(outcome)
            return DeliveryReport(rung, notification.episode_id, role, (outcome,))
        return deliver(
            notification,
            roster.contacts_for(notification.role),
            now=lambda: datetime.now(UTC),
            already_delivered=already_delivered,
            on_outcome=on_outcome,
        )
