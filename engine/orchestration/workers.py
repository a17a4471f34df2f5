"""``carepath up --workers N``: N-1 more serving processes beside ``up``, supervised by it.

Each is ``python -m flows.serve`` against the same Prefect server, store, data folder, roster and pathways: the
runs of every deployment go to whichever serving process polls first (Prefect's own sharing; nothing of ours
assigns work). They are told they serve beside others (``CAREPATH_SERVING_SHARED=1``), so a restarting one does
not take back the runs a live sibling holds. Supervision:

- **they die with ``up``**, even a kill -9 of it: each asks the kernel for SIGKILL when the thread that started it
  ends (:func:`~engine.orchestration.server.die_with_parent`; a slot's thread lives as long as ``up`` serves). Not
  SIGTERM: Prefect's runner answers SIGTERM with ``sys.exit`` from inside its event loop, which can leave an idle
  worker thread that the interpreter then waits for at exit, for ever (seen here). The runs a killed serving
  process had started are processes of their own and finish; the ones it had only picked up are requeued by the
  sweep's reconciler;
- **one that exits is started again**, after a delay that grows while it keeps failing (:class:`Backoff`: 1 s
  doubling to 60 s, back to 1 s once it ran a minute);
- **stopping ``up`` stops them**: SIGINT, as Ctrl-C would (the serving loop ends cleanly and the runs in flight
  finish), then SIGKILL of its process group (its run processes included) after a grace period.

Each writes to ``<data folder>/serve-<k>.log`` (``up`` itself is serving process 1).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from engine.app import Settings
from engine.app.settings import SERVING_SHARED_ENV
from engine.errors import one_line
from engine.orchestration.backoff import Backoff
from engine.orchestration.server import die_with_parent, stop_process_group

__all__ = ["MAX_WORKERS", "SERVE_COMMAND", "ServingWorkers", "start_workers", "worker_env"]

#: The most serving processes one ``carepath up`` runs (itself included): beyond a few per core they only compete.
MAX_WORKERS = 32
#: What each extra serving process runs (the command an operator runs on another host).
SERVE_COMMAND = (sys.executable, "-m", "flows.serve")
#: How long a stopped serving process may take to let its runs in flight finish before it is killed.
STOP_GRACE = 30.0


def worker_env(settings: Settings, api_url: str) -> dict[str, str]:
    """The environment of an extra serving process: ``up``'s own, with every setting ``up`` resolved made explicit
    (a ``--pathways`` option, the default data folder and store) and the Prefect server ``up`` serves against."""
    env = settings.child_env(
        CAREPATH_HOME=str(settings.home),
        CAREPATH_DATABASE_URL=settings.database_url,
        CAREPATH_PATHWAYS=str(settings.pathways.resolve()),
        PREFECT_API_URL=api_url,
        **{SERVING_SHARED_ENV: "1"},
    )
    if settings.roster is not None:
        env["CAREPATH_ROSTER"] = str(settings.roster.resolve())
    return env


def start_workers(settings: Settings, count: int, api_url: str) -> ServingWorkers | None:
    """Start ``count`` extra serving processes (None when there are none to start)."""
    if count < 1:
        return None
    workers = ServingWorkers(SERVE_COMMAND, worker_env(settings, api_url), count, settings.home)
    workers.start()
    logs = ", ".join(str(workers.log_path(slot)) for slot in workers.slots)
    print(f"started {count} more serving process{'es' if count > 1 else ''} (logs: {logs})", flush=True)
    return workers


class ServingWorkers:
    """``count`` copies of ``command``, each restarted when it exits, until :meth:`stop`.

    ``backoff`` makes each slot's :class:`Backoff` (injected by tests for short delays); ``say`` prints what
    happens (a worker exiting, its restart) for the operator.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        count: int,
        log_dir: Path,
        *,
        backoff: Callable[[], Backoff] = Backoff,
        grace: float = STOP_GRACE,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.slots = list(range(2, count + 2))  # `up` is serving process 1
        self.log_dir = log_dir
        self.grace = grace
        self._backoff = backoff
        self._print = say or (lambda line: print(line, flush=True))
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._starts: dict[int, int] = dict.fromkeys(self.slots, 0)
        self._threads = [
            threading.Thread(target=self._supervise, args=(slot,), name=f"carepath-serving-{slot}", daemon=True)
            for slot in self.slots
        ]

    def log_path(self, slot: int) -> Path:
        return self.log_dir / f"serve-{slot}.log"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for thread in self._threads:
            thread.start()

    def pids(self) -> dict[int, int]:
        """Slot -> pid of the serving processes running now."""
        with self._lock:
            return {slot: p.pid for slot, p in self._processes.items() if p.poll() is None}

    def starts(self, slot: int) -> int:
        """How many times ``slot``'s process was started."""
        with self._lock:
            return self._starts[slot]

    def stop(self) -> None:
        """SIGINT every serving process, wait up to ``grace`` s for them together, then kill what is left."""
        with self._lock:
            self._stopping.set()
            processes = list(self._processes.values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)  # the leader only, as Ctrl-C: its runs in flight may finish
        deadline = time.monotonic() + self.grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            stop_process_group(process, grace=0)  # what is left of it, its run processes included
        for thread in self._threads:
            thread.join(timeout=5)

    def _supervise(self, slot: int) -> None:
        """Run slot ``slot`` until stopped: start its process (from this thread, which the parent-death signal
        follows), wait for it, and start it again after the backoff's delay."""
        backoff = self._backoff()
        backoff.sleep = self._pause
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                process: subprocess.Popen[bytes] | None = None
                try:
                    process = self._spawn(slot)
                except OSError as exc:
                    self._say(f"cannot start serving process {slot}: {one_line(str(exc))}")
                else:
                    self._processes[slot] = process
                    self._starts[slot] += 1
            started = time.monotonic()
            code = process.wait() if process is not None else None
            if self._stopping.is_set():
                return
            backoff.ran_for(time.monotonic() - started)
            if process is not None:
                why = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
                self._say(
                    f"serving process {slot} (pid {process.pid}) {why}{self._last_line(slot)}; "
                    f"starting it again in {backoff.next_delay():g} s"
                )
            backoff.wait()

    def _say(self, line: str) -> None:
        """Tell the operator; a closed terminal must not end the supervision (the slot's thread holds its process)."""
        with contextlib.suppress(OSError, ValueError):
            self._print(line)

    def _pause(self, seconds: float) -> None:
        """The backoff's sleep: a stop ends it at once."""
        self._stopping.wait(seconds)

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        with self.log_path(slot).open("ab") as log:
            return subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stopping it stops its run processes too
                preexec_fn=die_with_parent(signal.SIGKILL),
            )

    def _last_line(self, slot: int) -> str:
        """`` (serve-2.log: <its last line>)``, or nothing: why it stopped, as it said it."""
        try:
            lines = self.log_path(slot).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        last = next((line for line in reversed(lines) if line.strip()), "")
        return f" ({self.log_path(slot).name}: {one_line(last, 160)})" if last else ""
