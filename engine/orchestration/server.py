"""Start and stop a local Prefect server as a child process (for ``carepath up`` and the test suite).

Why a subprocess and not ``prefect_test_harness``: the harness runs the server inside the caller's event loop
and process, so it cannot be killed or restarted independently, and its startup is no faster. A child process
in its own process group is exactly what an operator runs, and ``stop()`` leaves no orphan behind.

The server's whole state (SQLite database, profiles, logs) lives under ``home``; telemetry is off, since the
machine may be offline and Carepath never phones home. ``PREFECT_API_URL`` is removed from the child's
environment: a server must not talk to another server.

The server must not outlive the process that started it, or the same ``carepath up`` is refused after a crash
("port in use"). Two guards, because either alone has a gap:

- on Linux the child asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so even a
  kill -9 of ``carepath up`` stops its server within seconds;
- a pid file in the data folder records the server; a restart that finds it still alive (another OS, a server
  slow to shut down, a parent that was not the starting thread) stops that process group and takes the port
  over, after checking from its command line that the pid is still a Prefect server on that port.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from engine.errors import OrchestrationError

__all__ = [
    "OFFLINE_ENV",
    "LocalServer",
    "api_reachable",
    "die_with_parent",
    "free_port",
    "server_env",
    "spawn_local_server",
    "start_local_server",
    "stop_process_group",
    "take_over",
]

#: Environment that keeps every Prefect process (server, serve, CLI) from reaching the network on its own.
OFFLINE_ENV: Mapping[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}

#: How many runs of a scheduled deployment the server creates ahead (Prefect's default: 100). Carepath's one schedule
#: is the daily measures; 100 days of waiting runs would crowd the operators' list of upcoming runs and be deleted
#: and made again each time ``up`` registers the deployments. An operator's own setting wins.
SCHEDULED_RUNS_AHEAD = 3

#: What the child runs: ``prefect`` with its garbage collection off the event loop on SQLite (see that module).
SERVER_MODULE = "engine.orchestration.prefect_server"

_DEFAULT_STARTUP_TIMEOUT = 120.0
_DEFAULT_GRACE = 10.0
_LOG_TAIL_LINES = 15
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (the OS picks it; a race with another binder is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


def api_reachable(api_url: str, timeout: float = 2.0) -> bool:
    """True if ``{api_url}/health`` answers 200 (``api_url`` ends in ``/api``)."""
    from engine.orchestration.prefect_api import tls_context

    try:  # the process's TLS context: a new one per check would load the CA bundle each time (24 ms of CPU)
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout, verify=tls_context())
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def server_env(home: Path, *, database_url: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server whose state lives under ``home`` (SQLite there unless ``database_url``)."""
    env = dict(os.environ if base is None else base)
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_API_KEY", None)
    env.update(OFFLINE_ENV)
    env["PREFECT_HOME"] = str(home)
    env["PREFECT_PROFILES_PATH"] = str(home / "profiles.toml")
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    env.setdefault("PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS", str(SCHEDULED_RUNS_AHEAD))
    return env


@dataclass
class LocalServer:
    """A running ``prefect server start`` child process; stop it with :meth:`stop` or a ``with`` block."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    home: Path
    log_path: Path
    startup_seconds: float = field(default=0.0)
    started_at: float = field(default_factory=time.monotonic)
    #: Where the running server is recorded for a restart to find (removed by :meth:`stop`); None: not recorded.
    pid_file: Path | None = None

    @property
    def ui_url(self) -> str:
        """Where an operator opens the Prefect UI (the server serves it at its root)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for ``PREFECT_API_URL``."""
        return f"{self.ui_url}/api"

    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def wait_ready(self, timeout: float = _DEFAULT_STARTUP_TIMEOUT) -> None:
        """Return once ``/api/health`` answers; sets :attr:`startup_seconds`. Raises :class:`OrchestrationError`
        (with the tail of the server log) if it exits or does not answer within ``timeout`` s, and stops it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise OrchestrationError(
                    f"the Prefect server exited with code {self.process.returncode} during startup; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if api_reachable(self.api_url, timeout=1.0):
                self.startup_seconds = time.monotonic() - self.started_at
                return
            time.sleep(0.2)
        self.stop()
        raise OrchestrationError(
            f"the Prefect server did not answer {self.api_url}/health within {timeout:.0f} s; "
            f"log {self.log_path}:\n{_tail(self.log_path)}"
        )

    def stop(self, grace: float = _DEFAULT_GRACE) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after ``grace`` seconds."""
        stop_process_group(self.process, grace)
        if self.pid_file is not None and _read_pid_file(self.pid_file).get("pid") == self.process.pid:
            self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_local_server(
    home: Path,
    port: int | None = None,
    *,
    log_path: Path,
    host: str = "127.0.0.1",
    timeout: float = _DEFAULT_STARTUP_TIMEOUT,
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
) -> LocalServer:
    """Start a Prefect server on ``host:port`` (a free port if None) and return once ``/api/health`` answers.

    The server gets SIGTERM when the calling thread's process dies (Linux). With ``pid_file``, a server a crashed
    predecessor left behind (recorded there) is stopped first and this one is recorded in its place.
    Raises :class:`OrchestrationError` (with the tail of the server log) if it exits or is not healthy within
    ``timeout`` seconds; the process is stopped in that case.
    """
    server = spawn_local_server(
        home, port, log_path=log_path, host=host, database_url=database_url, extra_env=extra_env, pid_file=pid_file
    )
    server.wait_ready(timeout)
    return server


def spawn_local_server(
    home: Path,
    port: int | None = None,
    *,
    log_path: Path,
    host: str = "127.0.0.1",
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
) -> LocalServer:
    """:func:`start_local_server` without the wait: the caller does other work while the server boots (its
    start is the longest part of a restart), then calls :meth:`LocalServer.wait_ready`."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    if pid_file is not None:
        take_over(pid_file, host, port)
    if _in_use(host, port):
        raise OrchestrationError(
            f"port {port} on {host} is already in use (another Carepath or Prefect server?); choose another with --port"
        )
    env = server_env(home, database_url=database_url)
    env.update(extra_env or {})
    command = [sys.executable, "-m", SERVER_MODULE, "server", "start", "--host", host, "--port", str(port)]
    with log_path.open("ab") as log:
        try:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            raise OrchestrationError(f"cannot start the Prefect server: {exc}") from exc
    server = LocalServer(process=process, host=host, port=port, home=home, log_path=log_path, pid_file=pid_file)
    server.started_at = time.monotonic()
    if pid_file is not None:
        partial = pid_file.with_name(f".{pid_file.name}.{os.getpid()}")
        partial.write_text(json.dumps({"pid": process.pid, "host": host, "port": port}))
        os.replace(partial, pid_file)  # a reader sees the old record or the new one, never half of one
    return server


def stop_process_group(process: subprocess.Popen[bytes], grace: float = _DEFAULT_GRACE) -> int:
    """Stop a child started with ``start_new_session=True`` and everything it started; return its exit code.

    SIGTERM to the group, SIGKILL after ``grace`` seconds; ``grace=0`` kills at once (a crash, for tests).
    """
    if process.poll() is None:
        if grace > 0:
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    # The leader may be gone while something it started lingers in its group: leave no orphan.
    _signal_group(process.pid, signal.SIGKILL)
    return process.returncode


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when its parent dies; None elsewhere.

    The kernel watches the *thread* that forks: start long-lived children from a thread that lives as long as the
    process (the main thread). If the parent is already gone when the child gets there, the child stops itself.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def take_over(pid_file: Path, host: str, port: int, grace: float = _DEFAULT_GRACE) -> bool:
    """Stop the server recorded in ``pid_file`` if it still runs on ``host:port``; True if one was stopped.

    A pid is trusted only while its command line is a Prefect server on that port (a pid reused by another
    program is left alone, and ``port in use`` is then reported as before). The file is removed either way.
    """
    record = _read_pid_file(pid_file)
    pid = record.get("pid")
    stopped = False
    if isinstance(pid, int) and record.get("port") == port and _is_prefect_server(pid, port):
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pid, signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + grace:
            time.sleep(0.05)
        stopped = True
    pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + grace
    while stopped and _in_use(host, port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return stopped


def _read_pid_file(pid_file: Path) -> dict[str, object]:
    try:
        record = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_prefect_server(pid: int, port: int) -> bool:
    """True if ``pid`` runs ``prefect server start ... --port <port>`` (read from /proc; False elsewhere)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return "prefect" in " ".join(argv) and "server" in argv and "start" in argv and str(port) in argv


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
