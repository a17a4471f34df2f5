"""The caseload benchmark's reckoning (``bench/caseload_stats.py``) on small hand-made rows: what counts as expected,
lost, raced and doubled, the percentiles it reports, the API calls it reads from an access log, and which
non-final runs it excuses. The module is loaded from its file: the tests do not have the repository root on
``sys.path``, and the module imports nothing from ``bench`` or ``engine``."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "caseload_stats.py"
    spec = importlib.util.spec_from_file_location("caseload_stats", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["caseload_stats"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


cs = _load()
BOUND = 60.0


def judge(rungs: list[object], escalations: list[object], messages: dict[tuple[str, str], int] | None = None) -> object:
    return cs.reckon(rungs, escalations, messages or {}, horizon=1_000.0, now=2_000.0, bound=BOUND)


def test_percentiles_interpolate_between_ranks_and_say_nothing_for_no_values() -> None:
    values = [float(n) for n in range(1, 101)]
    assert cs.percentile(values, 50) == pytest.approx(50.5)
    assert cs.percentile(values, 99) == pytest.approx(99.01)
    assert cs.percentile([7.0], 95) == 7.0
    assert math.isnan(cs.percentile([], 50))
    assert cs.summary([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    assert cs.summary([1.0, 3.0]) == {"n": 2, "p50": 2.0, "p95": 2.9, "p99": 3.0, "max": 3.0}


def test_an_escalated_and_delivered_rung_counts_once_with_its_lateness() -> None:
    found = judge([cs.Rung("r1", "task", due=100.0)], [cs.Escalation("r1", raised=104.0, delivered=110.0)])
    assert (found.expected, found.raised, found.delivered) == (1, 1, 1)
    assert found.lateness == {"r1": 4.0} and found.delivery_lateness == {"r1": 10.0}
    assert not found.lost and not found.doubled


def test_a_rung_whose_run_was_made_after_it_was_due_is_told_apart_from_one_whose_run_waited() -> None:
    found = judge(
        [
            cs.Rung("waited", "task", due=100.0, scheduled=40.0),
            cs.Rung("made-late", "task", due=100.0, scheduled=130.0),
            cs.Rung("never-made", "task", due=100.0),  # fired by the sweep without a run of its own
        ],
        [cs.Escalation(r, raised=150.0, delivered=151.0) for r in ("waited", "made-late", "never-made")],
    )
    assert found.timer_after_due == {"made-late", "never-made"}
    assert found.lateness == {"waited": 50.0, "made-late": 50.0, "never-made": 50.0}


def test_lateness_is_split_into_waiting_for_the_run_to_start_and_firing_after_it_started() -> None:
    rungs = [
        cs.Rung("run-late", "task", due=100.0, run="A"),  # its run started 30 s after it was due
        cs.Rung("run-early", "task", due=100.0, run="B"),  # its run was running before it was due
        cs.Rung("started-after-firing", "task", due=100.0, run="C"),  # cannot wait longer than it was late
        cs.Rung("run-unknown", "task", due=100.0, run="Z"),
        cs.Rung("not-escalated", "task", due=100.0, run="A"),
    ]
    lateness = {"run-late": 45.0, "run-early": 12.0, "started-after-firing": 5.0, "run-unknown": 9.0}
    split = cs.run_start_split(rungs, lateness, {"A": 130.0, "B": 60.0, "C": 120.0})
    assert split == {"before_run_started": [30.0, 0.0, 5.0], "after_run_started": [15.0, 12.0, 0.0]}


def test_rungs_that_could_not_fire_are_not_expected() -> None:
    found = judge(
        [
            cs.Rung("met-before-due", "task", due=100.0, stopped=90.0),
            cs.Rung("timeout", "timeout", due=100.0),  # moves the episode, alerts nobody
            cs.Rung("after-the-horizon", "task", due=1_500.0),
        ],
        [],
    )
    assert found.expected == 0 and not found.lost


def test_a_due_rung_never_escalated_is_lost_after_the_bound_and_pending_before_it() -> None:
    found = judge([cs.Rung("old", "task", due=100.0)], [])
    assert found.lost == {"old": "not escalated 1900 s after due"}
    recent = cs.reckon([cs.Rung("r", "task", due=990.0)], [], {}, horizon=1_000.0, now=1_020.0, bound=BOUND)
    assert recent.pending == 1 and not recent.lost


def test_an_event_that_beat_a_late_escalation_is_raced_within_the_bound_and_lost_beyond_it() -> None:
    found = judge(
        [cs.Rung("raced", "task", due=100.0, stopped=130.0), cs.Rung("missed", "task", due=100.0, stopped=400.0)], []
    )
    assert found.raced == 1
    assert list(found.lost) == ["missed"]


def test_an_escalation_without_a_delivery_outcome_is_lost() -> None:
    found = judge([cs.Rung("r1", "task", due=100.0)], [cs.Escalation("r1", raised=105.0, delivered=None)])
    assert found.raised == 1 and found.delivered == 0
    assert found.lost == {"r1": "escalated, no delivery outcome"}


def test_doubles_are_a_rung_escalated_twice_or_a_contact_told_twice() -> None:
    found = judge(
        [cs.Rung("r1", "task", due=100.0), cs.Rung("r2", "task", due=100.0)],
        [cs.Escalation("r1", 101.0, 102.0), cs.Escalation("r1", 150.0, 151.0), cs.Escalation("r2", 101.0, 102.0)],
        {("r2", "/supervisor"): 2, ("r1", "/care-coordinator"): 1},
    )
    assert set(found.doubled) == {"r1", "r2"}
    assert found.lateness["r1"] == 1.0  # the first escalation is the one that counts
    assert found.raised == 2


def test_api_calls_are_read_from_the_access_log_with_ids_folded() -> None:
    run = "/api/deployments/{}/create_flow_run"
    log = [
        f'INFO:     127.0.0.1:4 - "POST {run.format("0b1c2d3e-0000-4000-8000-000000000001")} HTTP/1.1" 201 Created',
        f'INFO:     127.0.0.1:5 - "POST {run.format("0b1c2d3e-0000-4000-8000-000000000002")} HTTP/1.1" 503 Busy',
        'INFO:     127.0.0.1:6 - "GET /api/deployments/name/reentry-deadline/reentry HTTP/1.1" 200 OK',
        "12:00:00.000 | INFO    | prefect.server.services.scheduler - Scheduled 0 runs.",
    ]
    calls = cs.api_calls(log)
    assert calls == {
        "POST /deployments/{id}/create_flow_run": 2,
        "GET /deployments/name/{name}": 1,
        "(5xx)": 1,
    }


def test_future_timers_and_runs_in_flight_are_excused_and_the_rest_is_left_behind() -> None:
    now = 10_000.0
    runs = [
        cs.RunRow("timer", "SCHEDULED", scheduled=now + 600, since=now - 900, deployment=True),
        cs.RunRow("late", "SCHEDULED", scheduled=now - 600, since=now - 900, deployment=True),
        cs.RunRow("starting", "PENDING", scheduled=now - 10, since=now - 5, deployment=True),
        cs.RunRow("stuck", "PENDING", scheduled=now - 900, since=now - 800, deployment=True),
        cs.RunRow("cancelling", "CANCELLING", scheduled=None, since=now - 300, deployment=True),
    ]
    found = cs.leftover_runs(runs, now)
    assert found["timers"] == ["SCHEDULED timer"]
    assert found["in_flight"] == ["PENDING starting"]
    assert found["left"] == ["SCHEDULED late", "PENDING stuck", "CANCELLING cancelling"]


def test_runs_for_rungs_due_after_the_drive_are_timers_even_when_late() -> None:
    now, end = 10_000.0, 9_000.0
    runs = [
        cs.RunRow("after the drive", "SCHEDULED", scheduled=9_500.0, since=8_000.0, deployment=True),
        cs.RunRow("during the drive", "SCHEDULED", scheduled=8_500.0, since=8_000.0, deployment=True),
    ]
    found = cs.leftover_runs(runs, now, horizon=end)
    assert found["timers"] == ["SCHEDULED after the drive"]
    assert found["left"] == ["SCHEDULED during the drive"]
