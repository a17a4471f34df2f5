"""The local Prefect server must not outlive ``carepath up`` (issue 14): the parent-death signal and the pid file.

Real processes, no Prefect server: a stand-in whose command line reads like ``prefect server start --port N``
and that listens on that port. The full ``carepath up`` kill -9 scenario is in ``test_outages.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import OrchestrationError
from engine.orchestration.server import _alive, _in_use, free_port, start_local_server, take_over

ROOT = Path(__file__).resolve().parents[1]
LISTEN = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[-1]))); s.listen(); "
    "time.sleep(600)"
)
SPAWN = """
import subprocess, sys, time
from engine.orchestration.server import die_with_parent
guard = die_with_parent() if sys.argv[1] == "guarded" else None
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
child = subprocess.Popen(sleeper, preexec_fn=guard, start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _orphan_child(mode: str) -> int:
    """Start a parent that starts a child (``guarded`` or not), kill -9 the parent; return the child's pid."""
    parent = subprocess.Popen([sys.executable, "-c", SPAWN, mode], cwd=ROOT, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    return child


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_started_with_die_with_parent_dies_when_its_parent_is_killed() -> None:
    unguarded = _orphan_child("plain")
    try:
        time.sleep(1)
        assert _alive(unguarded), "control: without the guard the child outlives its parent"
    finally:
        os.kill(unguarded, signal.SIGKILL)
    guarded = _orphan_child("guarded")
    assert _wait_gone(guarded), "the guarded child outlived its killed parent"


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A process that looks like the server a crashed ``carepath up`` left behind, recorded in its pid file."""
    port = free_port()
    argv = [sys.executable, "-c", LISTEN, "-m", "prefect", "server", "start", "--port", str(port)]
    process = subprocess.Popen(argv, start_new_session=True)
    deadline = time.monotonic() + 15
    while not _in_use("127.0.0.1", port):
        assert time.monotonic() < deadline, "the stand-in did not listen"
        time.sleep(0.05)
    pid_file = tmp_path / "prefect-server.pid"
    pid_file.write_text(json.dumps({"pid": process.pid, "host": "127.0.0.1", "port": port}))
    yield process, port, pid_file
    process.kill()
    process.wait()


def test_a_restart_takes_over_the_server_its_crashed_predecessor_left(
    stand_in: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, pid_file = stand_in
    assert take_over(pid_file, "127.0.0.1", port) is True
    assert process.wait(timeout=15) is not None
    assert not _in_use("127.0.0.1", port) and not pid_file.exists()


def test_a_pid_that_is_not_our_server_is_left_alone_and_the_port_is_refused(
    stand_in: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path
) -> None:
    process, port, pid_file = stand_in
    pid_file.write_text(json.dumps({"pid": process.pid, "host": "127.0.0.1", "port": port + 1}))  # another port
    assert take_over(pid_file, "127.0.0.1", port + 1) is False
    assert process.poll() is None and not pid_file.exists()
    pid_file.write_text(json.dumps({"pid": process.pid, "host": "127.0.0.1", "port": port - 1}))
    with pytest.raises(OrchestrationError, match=f"port {port} on 127.0.0.1 is already in use"):
        start_local_server(tmp_path / "home", port, log_path=tmp_path / "server.log", pid_file=pid_file)
    assert process.poll() is None, "a process that is not the recorded server is never killed"
