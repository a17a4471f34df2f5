"""What operators see of an episode in Prefect: its Markdown artifact, its medication table, the open-escalations
table. Built from the store with opaque ids, the pathway's own words and codes only (never a payload or a reason
someone typed), and handed to the :class:`~engine.app.ports.Publisher` port."""

from __future__ import annotations

from engine.app.context import App
from engine.app.views import discrepancy_rows, episode_markdown, episode_status, open_escalation_rows

__all__ = ["ESCALATIONS_ARTIFACT", "publish_episode", "publish_open_escalations"]

ESCALATIONS_ARTIFACT = "open-escalations"
#: What operators see of a reconciliation: the kind of each finding and where it stands. Drug names, doses and a
#: clinician's reasons come from lists and people, so they stay behind ``carepath meds`` / ``carepath status``.
_MEDS_SHOWN = ("kind", "critical", "status", "resolved")


def publish_episode(app: App, episode_id: str, *, escalations_changed: bool) -> None:
    """Refresh the episode's artifacts (and the operators' escalation table if escalations changed)."""
    status = episode_status(app.engine, episode_id)
    app.publisher.markdown(
        f"episode-{episode_id}".lower(),
        episode_markdown(status, app.clock.now()),
        f"Episode {episode_id}: stage, open handoffs, next deadlines, escalations",
    )
    meds = discrepancy_rows(app.engine, episode_id)
    if meds:
        app.publisher.table(
            f"meds-{episode_id}".lower(),
            [{k: v for k, v in row.items() if k in _MEDS_SHOWN} for row in meds],
            f"Episode {episode_id}: medication reconciliation of the current stage visit (details: carepath meds)",
        )
    if escalations_changed:
        publish_open_escalations(app)


def publish_open_escalations(app: App) -> None:
    """The operators' table of unacknowledged escalations, most severe first."""
    app.publisher.table(
        ESCALATIONS_ARTIFACT,
        open_escalation_rows(app.engine),
        "Open (unacknowledged) escalations across all episodes, most severe first",
    )
