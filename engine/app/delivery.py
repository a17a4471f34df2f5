"""Escalation delivery: every escalation gets an outcome per contact (delivered, failed after retries, or "no
contact for this role"), and no path can skip it.

The process that raises an escalation claims its delivery in the same transaction (``delivery_claimed_at``) and
delivers it at once; :func:`deliver_pending` (run by the sweep) delivers what was never claimed or whose claim went
stale (the process died). All escalations of one follow-up are delivered concurrently, so every ``critical_to``
role is alerted at the same time. A contact already recorded as delivered is never sent the message again.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlmodel import Session

from engine import store
from engine.app.context import App
from engine.clock import utc
from engine.notify.delivery import DeliveryOutcome, DeliveryReport, escalation_notification

__all__ = ["CLAIM_STALE", "deliver", "deliver_pending"]

logger = logging.getLogger("carepath.delivery")

#: A claim older than this (wall time) belongs to a process that died: the sweep delivers the escalation instead.
CLAIM_STALE = timedelta(seconds=45)
_MAX_PARALLEL = 8


def deliver(app: App, rung_ids: list[str]) -> list[DeliveryReport]:
    """Deliver the escalations of ``rung_ids`` (claimed by the caller), all at once; every outcome is stored."""
    with Session(app.engine) as session:
        notices = store.escalation_notices(session, rung_ids)
    if not notices:
        return []
    if len(notices) == 1:
        return [_deliver_one(app, notices[0])]
    with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(notices)), thread_name_prefix="deliver") as pool:
        return list(pool.map(lambda n: _deliver_one(app, n), notices))


def deliver_pending(app: App, limit: int = 200) -> list[DeliveryReport]:
    """Deliver escalations nobody finished delivering: never claimed, or claimed by a process that died."""
    wall = _wall_now(app)
    stale = wall - CLAIM_STALE
    with Session(app.engine) as session:
        candidates = store.escalations_to_deliver(session, stale, limit)
    mine = []
    for rung_id in candidates:
        with store.session_scope(app.engine) as session:
            if store.claim_delivery(session, rung_id, wall, stale):
                mine.append(rung_id)
    return deliver(app, mine)


def _deliver_one(app: App, notice: store.EscalationNotice) -> DeliveryReport:
    note = escalation_notification(
        episode_id=notice.episode_id,
        pathway_id=notice.pathway_id,
        stage_id=notice.stage or None,
        work_title=notice.work_title,
        rung_id=notice.rung_id,
        rung_index=notice.rung_index,
        role=notice.role,
        due_at=utc(notice.due_at),
        severity=notice.severity,
    )
    with Session(app.engine) as session:
        done = {d.key for d in store.deliveries_for(session, rung_id=notice.rung_id) if d.status == "delivered"}

    def record(outcome: DeliveryOutcome) -> None:
        with store.session_scope(app.engine) as session:
            store.record_delivery(session, {**asdict(outcome), "episode_id": notice.episode_id}, app.clock.now())

    report = app.notifier.deliver(note, already_delivered=done, on_outcome=record)
    with store.session_scope(app.engine) as session:
        # the episode first, as every writer of its rows takes it: finishing the escalation, then waiting at commit
        # for the episode an acknowledgement held while it waited for that escalation, was a deadlock (seen under load)
        store.lock_episode(session, notice.episode_id)
        store.finish_delivery(session, notice.rung_id, _wall_now(app))
        store.audit(
            session,
            notice.episode_id,
            app.clock.now(),
            "carepath",
            "escalation.delivered",
            {"summary": report.summary()},
        )
    logger.info("escalation %s: %s", notice.rung_id, report.summary())
    return report


def _wall_now(app: App) -> datetime:
    return app.clock.wall_time(app.clock.now())
