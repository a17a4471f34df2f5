"""Names operators read in the Prefect UI: each run says what it did, with opaque ids and pathway words only."""

from __future__ import annotations

from engine.app.context import App
from engine.app.ports import SweepReport
from engine.app.views import episode_status
from engine.clock import utc

__all__ = ["describe_event", "episode_run_name", "sweep_run_name"]


def describe_event(event: str, moved: tuple[str, str] | None, duplicate: bool, stage: str) -> str:
    """``custody.released: pre-release → community-care``, ``contact.made in iop``, ``x (duplicate)``."""
    if duplicate:
        return f"{event} (duplicate)"
    if moved:
        return f"{event}: {moved[0]} → {moved[1]}"
    return f"{event} in {stage}"


def episode_run_name(app: App, episode_id: str, what: str) -> str:
    """``ep-7f3a2c · detox.completed: detox → residential · next: ... by 2026-12-02 09:00``."""
    status = episode_status(app.engine, episode_id, audit_tail=0)
    nxt = ""
    if status.items:
        first = status.items[0]
        nxt = f" · next: {first.title} by {utc(first.due_at):%Y-%m-%d %H:%M}"
    return f"{episode_id} · {what}{nxt}"


def sweep_run_name(report: SweepReport) -> str:
    """``sweep · fired 5 · scheduled 2``, plus what else it did (``· applied 1 · runs cancelled 2``).

    A fired rung's alerts go out with it; ``late alerts sent`` counts alerts raised earlier whose delivery never
    finished (its process died), so an operator does not read "delivered 0" after a catch-up that sent five."""
    name = f"sweep · fired {report.fired} · scheduled {report.scheduled}"
    extra = [
        ("late alerts sent", report.delivered),
        ("applied", report.applied),
        ("runs cancelled", report.cancelled),
        ("requeued", report.requeued),
    ]
    extra += [("ended", report.ended), ("problems", len(report.problems))]
    return name + "".join(f" · {what} {count}" for what, count in extra if count)
