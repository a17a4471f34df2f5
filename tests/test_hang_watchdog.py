"""A test that hangs inside C code holding the GIL (out of pytest-timeout's reach) ends its worker with every
thread's stack, and the rest of the suite still runs: CI reports it instead of running into its time limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
