"""What people read: one episode's status and the caseload. What they ask for is checked first, so a typo'd or
hostile id is one line (:mod:`engine.app.inputs`), never a query."""

from __future__ import annotations

from typing import Any

from engine.app import inputs
from engine.app.context import App
from engine.app.views import EpisodeStatus, caseload, episode_status

__all__ = ["episodes", "status"]


def status(app: App, episode_id: str) -> EpisodeStatus:
    """One episode: stage, open work and rungs, handoffs, escalations, the tail of its audit trail."""
    inputs.check_id("episode id", episode_id)
    return episode_status(app.engine, episode_id)


def episodes(
    app: App, *, pathway: str | None = None, stage: str | None = None, overdue: bool = False
) -> list[dict[str, Any]]:
    """The caseload, one row per episode, filtered by pathway, stage or overdue work."""
    if pathway is not None:
        inputs.check_id("pathway id", pathway)
    if stage is not None:
        inputs.check_id("stage id", stage)
    return caseload(app.engine, app.clock.now(), pathway=pathway, stage=stage, overdue=overdue)
