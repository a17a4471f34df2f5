"""Issue 14: a burst of ``carepath event`` processes, some killed -9 mid-flight, on SQLite and PostgreSQL.

Twelve coordinator commands start at once against one store (a lock storm on SQLite); a third of them are killed
at staggered moments (while importing, storing, applying or following up), and the coordinator sends those again
with the same ``--id``, as one does after a command that never answered. Afterwards every event is applied
exactly once, nothing is doubled, no command showed SQL, and no Prefect run is left non-final (a killed command's
run is crashed by the heartbeat automation, its stored-but-unapplied event applied by the sweep).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from carepath_harness import LOAD_ALLOWANCE, Harness, running_carepath
from outage_harness import ROOT, describe_runs, runs_left_behind, runs_of, unfinished_runs, wait_until

from engine.store import AuditRecord, DeliveryRecord, EscalationRecord, InboundEventRecord

if TYPE_CHECKING:
    from prefect_harness import ServeProcessFactory

pytestmark = pytest.mark.prefect

SCREENINGS = ("medical-screening.completed", "psychiatric-screening.completed", "social-needs-screening.completed")
#: Seconds after the burst starts at which each victim is killed: mid-import, mid-store, mid-flow, mid-follow-up.
KILL_AT = (2.0, 5.0, 8.0, 12.0)
#: A stored event whose process died is applied by the sweep 60 s later; a killed run is crashed 90 s after its
#: last heartbeat (heartbeats every 30 s in the test session).
SETTLE = 60 + 90 + 60 + LOAD_ALLOWANCE


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def carepath(
    request: pytest.FixtureRequest,
    prefect_server: str,
    serve_process: ServeProcessFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    home = tmp_path_factory.mktemp(f"burst-{request.param}")
    with running_carepath(request.param, prefect_server, serve_process, home) as harness:
        yield harness


def _command(h: Harness, episode_id: str, name: str, event_id: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "engine", "event", episode_id, name, "--id", event_id]
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **h.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _applied(h: Harness, episodes: list[str]) -> Counter[tuple[str, str]]:
    """(episode, event) pairs the audit trail says were applied, with how many times."""
    rows = [a for e in episodes for a in h.rows(AuditRecord, episode_id=e) if a.action == "event"]
    return Counter((a.episode_id or "", str((a.detail or {}).get("event"))) for a in rows)


def test_event_processes_killed_mid_burst_lose_nothing_and_double_nothing(carepath: Harness) -> None:
    h = carepath
    episodes = [h.enroll("detox-to-aftercare", f"P-BURST-{n:03d}") for n in range(4)]
    sends = [(ep, name, f"burst-{ep}-{name}") for ep in episodes for name in SCREENINGS]
    victims = set(range(0, len(sends), 3))
    started = time.monotonic()
    procs = [_command(h, *send) for send in sends]
    for at, index in zip(KILL_AT, sorted(victims), strict=True):
        time.sleep(max(0.0, started + at - time.monotonic()))
        procs[index].kill()  # kill -9, wherever it is
    answers = {}
    for index, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300 + LOAD_ALLOWANCE)
        answers[index] = (proc.returncode, out.decode(), err.decode())
    killed = [i for i in victims if answers[i][0] == -9]
    assert killed, "the kills came after every command had finished: nothing was tested"
    stored_by_victims = {e.event_id for e in h.rows(InboundEventRecord) if e.event_id in {sends[i][2] for i in killed}}
    for index in sorted(victims):  # no answer came: the coordinator sends it again, same id
        proc = _command(h, *sends[index])
        out, err = proc.communicate(timeout=300 + LOAD_ALLOWANCE)
        answers[index] = (proc.returncode, out.decode(), err.decode())

    for index, (code, out, err) in answers.items():
        assert code == 0, f"{sends[index]}: exit {code}: {err.strip()}"
        assert out.count("\n") == 1 and ("applied" in out or "duplicate event" in out), out
        assert "SQL" not in err and "database is locked" not in err and "Traceback" not in err, err

    def settled() -> bool:
        inbound = [r for e in episodes for r in h.rows(InboundEventRecord, episode_id=e)]
        return all(r.status != "received" for r in inbound)

    wait_until("every stored event applied (the sweep takes those whose process died)", settled, SETTLE)
    applied = _applied(h, episodes)
    assert applied == Counter({(ep, name): 1 for ep, name, _id in sends}), "each event applied exactly once"
    escalations = [e for ep in episodes for e in h.rows(EscalationRecord, episode_id=ep)]
    assert len({e.rung_id for e in escalations}) == len(escalations)
    deliveries = [d.key for ep in episodes for d in h.rows(DeliveryRecord, episode_id=ep)]
    assert len(deliveries) == len(set(deliveries)), "no contact alerted twice"

    left_at = time.monotonic()
    wait_until(
        "no run left behind",
        lambda: runs_left_behind(h.app, episodes) == [],
        SETTLE,
        every=2,
        detail=lambda: describe_runs(runs_left_behind(h.app, episodes)),
    )
    crashed = [r.name for r in runs_of(h.app, episodes, ["CRASHED"])]
    print(
        f"\n{len(killed)} commands killed before answering; {len(stored_by_victims)} of their events were stored; "
        f"runs crashed by the heartbeat automation: {len(crashed)}; no run left behind "
        f"{time.monotonic() - left_at:.0f} s after the events settled"
    )
    h.retire_all()
    wait_until(
        "every run final",
        lambda: unfinished_runs(h.app, episodes) == [],
        SETTLE,
        every=2,
        detail=lambda: describe_runs(unfinished_runs(h.app, episodes)),
    )
