"""``carepath demo``: a synthetic cohort on both seed pathways, on a compressed clock.

The demo runs ``carepath up`` as a child process in its own data folder (``.carepath/demo``), stores a
compressed clock there (one pathway hour every four wall seconds by default) so every process agrees on the time,
then plays a script of events per person: some follow the pathway on time, some miss a step, so the Prefect
UI soon shows handoffs completed, deadlines missed and escalations raised. People are synthetic
(``P-DEMO-001``...); only episode ids reach Prefect.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.app.settings import Settings
from engine.clock import CompressedClock
from engine.episode.domain.consent import Consent, single_tpo_consent
from engine.errors import CarepathError, OrchestrationError

__all__ = ["COHORT", "Persona", "run_demo"]


@dataclass(frozen=True)
class Persona:
    """A synthetic person and what happens to them, as (pathway hours after enrollment, event, payload)."""

    person: str
    pathway: str
    story: str
    script: tuple[tuple[float, str, dict[str, Any]], ...] = field(default=())
    consented: bool = True


def demo_consent(episode_id: str, person: str, now: datetime) -> Consent:
    """A synthetic Part 2 consent: treatment, payment and operations, to the person's treating providers."""
    return single_tpo_consent(
        f"cn-{episode_id}",
        person,
        discloser="Carepath demo program",
        information="SUD diagnosis, current medications, referral details",
        signed_on=now.date(),
    )


_ASSESSED: tuple[tuple[float, str, dict[str, Any]], ...] = (
    (2, "medical-screening.completed", {}),
    (3, "psychiatric-screening.completed", {}),
    (4, "social-needs-screening.completed", {}),
)

COHORT: tuple[Persona, ...] = (
    Persona(
        "P-DEMO-001",
        "detox-to-aftercare",
        "detox to residential, every handoff closed on time",
        (
            *_ASSESSED,
            (6, "assessment.completed", {"insurance": "medicaid", "needs_withdrawal_management": True}),
            (8, "handoff.accepted", {}),
            (9, "medications.sending-list", {"medications": [{"name": "buprenorphine", "dose": "16 mg"}]}),
            (10, "medications.receiving-list", {"medications": [{"name": "Suboxone", "dose": "16 mg"}]}),
            (12, "handoff.visit-kept", {}),
            (14, "moud-plan.confirmed", {}),
            (30, "transfer-plan.completed", {}),
            (40, "detox.completed", {}),
            (44, "handoff.accepted", {}),
            (46, "medications.reconciled", {}),
        ),
    ),
    Persona(
        "P-DEMO-002",
        "detox-to-aftercare",
        "assessed, but the detox unit never accepts and buprenorphine is dropped: escalations",
        (
            *_ASSESSED,
            (5, "assessment.completed", {"insurance": "commercial", "needs_withdrawal_management": True}),
            (6, "medications.sending-list", {"medications": [{"name": "buprenorphine", "dose": "8 mg"}]}),
            (7, "medications.receiving-list", {"medications": [{"name": "ondansetron", "dose": "4 mg"}]}),
        ),
    ),
    Persona(
        "P-DEMO-003",
        "reentry",
        "MOUD before release, released, first fill and contacts on time",
        (
            (6, "moud.started", {"medication": "buprenorphine"}),
            (
                8,
                "wallet-card.issued",
                {"medication": "buprenorphine", "dose": "16 mg daily", "prescriber_contact": "Demo Clinic"},
            ),
            (10, "naloxone.provided", {}),
            (20, "custody.released", {"release_type": "parole", "bridge_supply_days": 7}),
            (22, "handoff.accepted", {}),
            (26, "prescription.filled", {}),
            (28, "contact.made", {}),
            (30, "medications.reconciled", {}),
            (46, "contact.made", {}),
        ),
    ),
    Persona(
        "P-DEMO-004",
        "reentry",
        "released with nothing confirmed: first fill and daily contacts missed",
        ((12, "custody.released", {"release_type": "sentence-complete"}),),
    ),
)


def _wait_until_served(settings: Settings, names: list[str], child: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the child's server to answer and its deployments to be served; fail fast if the child dies."""
    from datetime import UTC, datetime

    from engine.orchestration.server import api_reachable

    started, deadline = datetime.now(UTC), time.monotonic() + timeout
    while not ((url := settings.api_url()) and api_reachable(url)):
        if child.poll() is not None:
            raise OrchestrationError(
                f"`carepath up` exited early (code {child.returncode}); see {settings.home}/up.log"
            )
        if time.monotonic() > deadline:
            raise OrchestrationError(
                f"the Prefect server did not start within {timeout:.0f} s; see {settings.home}/up.log"
            )
        time.sleep(0.5)
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync, wait_for_deployments

    with prefect_api(settings):
        run_sync(wait_for_deployments(names, max(5.0, deadline - time.monotonic()), polled_since=started))


def run_demo(
    settings: Settings, *, factor: float, port: int, exit_when_done: bool, cohort: tuple[Persona, ...] = COHORT
) -> int:
    """Start Carepath in a child process, play the cohort's scripts, and keep serving until Ctrl-C."""
    from engine.app import enroll, record_event
    from engine.app.safety import record_consent
    from engine.app.views import caseload
    from engine.cli.render import render_table
    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.flows import dispatching_app
    from engine.orchestration.prefect_api import flush_logs

    if settings.home.exists():
        shutil.rmtree(settings.home)  # the demo always starts from an empty caseload
    settings.home.mkdir(parents=True)
    app = dispatching_app(settings)
    clock = CompressedClock.starting_now(factor)
    app.set_clock(clock)
    log = (settings.home / "up.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "engine", "up", "--port", str(port)],
        env=settings.child_env(CAREPATH_HOME=str(settings.home)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        pathways = sorted({p.pathway for p in cohort})
        names = [f"{p}-{k}/{p}" for p in pathways for k in ("enroll", "event", "deadline")]
        print(f"starting Carepath and a local Prefect server (log: {settings.home / 'up.log'}) ...", flush=True)
        _wait_until_served(settings, names, child, timeout=180)
        ui = (settings.api_url() or "").removesuffix("/api")
        print(f"Prefect UI: {ui}   clock: 1 pathway hour = {3600 / factor:g} s")
        timeline: list[tuple[Any, str, str, dict[str, Any]]] = []
        for persona in cohort:
            episode_id = enroll(app, persona.pathway, persona.person)
            episode = app.service.episode(episode_id)
            if persona.consented:
                record_consent(app, episode_id, demo_consent(episode_id, persona.person, clock.now()))
            print(f"  {episode_id}  {persona.person}  {persona.pathway}: {persona.story}", flush=True)
            for hours, name, data in persona.script:
                timeline.append((episode.enrolled_at + timedelta(hours=hours), episode_id, name, data))
        for at, episode_id, name, data in sorted(timeline, key=lambda t: t[0]):
            while clock.now() < at:
                time.sleep(min(0.5, (at - clock.now()).total_seconds() / factor + 0.01))
            try:
                record_event(app, episode_id, name, data, event_id=f"demo-{episode_id}-{name}-{at:%j%H%M}")
                print(f"  [{clock.now():%b %d %H:%M}] {episode_id}  {name}", flush=True)
            except CarepathError as exc:
                print(f"  [{clock.now():%b %d %H:%M}] {episode_id}  {name} refused: {exc}", flush=True)
        print("\ncaseload now:")
        print(render_table(caseload(app.engine, clock.now())))
        if exit_when_done:
            return 0
        print("\nThe cohort keeps running (deadlines keep firing). Ctrl-C stops everything.", flush=True)
        child.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if child.poll() is None:
            with prefect_api(settings), contextlib.suppress(Exception):
                flush_logs()  # this process's flow-run logs reach the server before it stops
            child.terminate()  # `carepath up` stops its Prefect server on the way out
            try:
                child.wait(timeout=90)
            except subprocess.TimeoutExpired:
                child.kill()
        log.close()
        app.close()
