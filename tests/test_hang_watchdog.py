"""A test that hangs inside C code holding the GIL (out of pytest-timeout's reach) ends its worker with every
thread's stack, and the rest of the suite still runs: CI reports it instead of running into its time limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hang_watchdog
import pytest

HANGS = textwrap.dedent(
    """
    import ctypes

    import pytest


    @pytest.mark.timeout(1)
    def test_deadlocks_holding_the_gil():
        libc = ctypes.PyDLL(None)  # PyDLL: the call keeps the GIL, so no signal handler runs
        mutex = ctypes.create_string_buffer(64)  # zeroed: a default (non-recursive) pthread mutex
        libc.pthread_mutex_lock(mutex)
        libc.pthread_mutex_lock(mutex)  # never returns
    """
)


def test_a_gil_held_hang_ends_its_worker_with_its_stack_and_the_suite_goes_on(tmp_path: Path) -> None:
    tests = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["hang_watchdog"]\n')
    (tmp_path / "test_hangs.py").write_text(HANGS)
    (tmp_path / "test_fine.py").write_text("def test_fine():\n    assert 1 + 1 == 2\n")
    env = {**os.environ, "CAREPATH_TEST_HANG_GRACE": "1", "PYTHONPATH": str(tests)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
         "--max-worker-restart=0", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert 'test_hangs.py", line 12 in test_deadlocks_holding_the_gil' in out, "the hung test's stack is printed"
    assert "crashed while running 'test_hangs.py::test_deadlocks_holding_the_gil'" in out, out
    assert "1 failed, 1 passed" in out, out


class _Config:
    def __init__(self, option: float | None, ini: str) -> None:
        self.option, self.ini = option, ini

    def getoption(self, name: str, default: object = None) -> object:
        return self.option if name == "timeout" else default

    def getini(self, name: str) -> str:
        return self.ini if name == "timeout" else ""


class _Item:
    def __init__(self, marker: pytest.Mark | None, config: _Config) -> None:
        self.marker, self.config = marker, config

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return self.marker if name == "timeout" else None


@pytest.mark.parametrize(
    ("marker", "option", "ini", "limit"),
    [
        (pytest.mark.timeout(5).mark, 7.0, "600", 5.0),
        (pytest.mark.timeout(timeout=5).mark, 7.0, "600", 5.0),  # the keyword form
        (pytest.mark.timeout(method="thread").mark, 7.0, "600", 7.0),  # no limit in the mark: the command line's
        (None, 7.0, "600", 7.0),
        (None, None, "600", 600.0),
    ],
)
def test_the_watchdog_fires_past_whichever_limit_pytest_timeout_applies(
    marker: pytest.Mark | None, option: float | None, ini: str, limit: float
) -> None:
    assert hang_watchdog._limit(_Item(marker, _Config(option, ini))) == limit + hang_watchdog.GRACE  # type: ignore[arg-type]


def test_no_limit_means_no_watchdog() -> None:
    assert hang_watchdog._limit(_Item(None, _Config(None, "0"))) is None  # type: ignore[arg-type]
