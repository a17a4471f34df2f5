"""Helpers of :mod:`bench.bench_transition`: statistics, stopping cleanly, counting the Prefect client's HTTP calls
and retries, the benchmark's environment, a throwaway PostgreSQL database and the serving process."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import pg

__all__ = [
    "ROOT",
    "ApiCalls",
    "RetryCounter",
    "Stopper",
    "configure_environment",
    "percentile",
    "prefect_database",
    "start_serving",
    "summarize",
]

ROOT = Path(__file__).resolve().parents[1]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """(median, p90)."""
    return statistics.median(values), percentile(values, 90)


class RetryCounter(logging.Handler):
    """Counts the Prefect client's "retryable status code" retries (a busy SQLite server answers 503, and the
    client waits about 2 s, then 4 s, ... before trying again): the main cost of a transition when they happen."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retryable" in record.getMessage():
            self.count += 1

    def install(self) -> RetryCounter:
        client_logger = logging.getLogger("prefect.client")
        client_logger.setLevel(logging.DEBUG)  # the console handlers keep their own (quiet) levels
        client_logger.addHandler(self)
        return self


class ApiCalls(logging.Handler):
    """Counts the HTTP requests this process makes (httpx logs each one; the Prefect client is httpx), by
    ``METHOD /path`` with ids as ``{id}``; answers of 500 and above are counted apart, as ``(retried)``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.calls: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 4:
            return
        method, url, _version, status = args[:4]
        path = _UUID.sub("{id}", str(getattr(url, "path", url))).removeprefix("/api")
        if path.startswith("/deployments/name/"):
            path = "/deployments/name/{name}"
        self.calls[f"{method} {path}" + (" (retried)" if int(status) >= 500 else "")] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock or contextlib.nullcontext():
            return Counter(self.calls)

    def install(self) -> ApiCalls:
        httpx_logger = logging.getLogger("httpx")
        httpx_logger.setLevel(logging.INFO)
        httpx_logger.propagate = False  # counted, never printed
        httpx_logger.addHandler(self)
        return self


class Stopper:
    """Ctrl-C and SIGTERM handling that never leaves a child process behind.

    Interrupting Prefect inside an in-process flow run can hang this process (seen: the event loop never
    returned, the children kept running), so the first Ctrl-C only asks the benchmark to stop between two steps;
    a second one, or SIGTERM, stops the children at once and exits with status 130.
    """

    def __init__(self) -> None:
        self.requested = False
        self.cleanups: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stopper:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def check(self) -> None:
        """Stop here (raising KeyboardInterrupt, so ``finally`` blocks run) if a stop was asked for."""
        if self.requested:
            raise KeyboardInterrupt

    def _handle(self, signum: int, frame: object) -> None:
        first = not self.requested
        self.requested = True
        if (first and signum == signal.SIGINT) or not self.cleanups:
            print("\nstopping after the current step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
            return
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        print("stopped", file=sys.stderr, flush=True)
        os._exit(130)


def configure_environment(home: Path, prefect_home: Path, api_url: str) -> dict[str, str]:
    """Make this process what ``carepath event`` is, pointed at the benchmark's server and store: set before
    Prefect is imported (it reads its settings once) and before ``Settings.from_env``; returns the environment
    for the serving child (the same, as ``carepath up`` would pass it)."""
    from engine.orchestration.server import OFFLINE_ENV
    from engine.process import configure_process

    if "prefect" in sys.modules:
        raise RuntimeError("Prefect was imported before its settings were known")
    os.environ.update(
        {
            **OFFLINE_ENV,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_PROFILES_PATH": str(prefect_home / "profiles.toml"),
            "CAREPATH_HOME": str(home),
            "CAREPATH_PATHWAYS": str(ROOT / "pathways"),
        }
    )
    for key in ("CAREPATH_DATABASE_URL", "CAREPATH_ROSTER", "PREFECT_API_KEY"):
        os.environ.pop(key, None)
    configure_process()  # what every entry point does first: telemetry off, Prefect's console quiet
    return dict(os.environ)


@contextlib.contextmanager
def prefect_database(kind: str, stopper: Stopper) -> Iterator[str | None]:
    """None for the server's own SQLite file; for ``postgresql``, a throwaway database on 127.0.0.1:5432 (or
    ``CAREPATH_BENCH_PG_URL``, a URL of a database that may create others), dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    admin = pg.admin_url()
    if admin is None:
        raise RuntimeError("no PostgreSQL answers at 127.0.0.1:5432 (set CAREPATH_BENCH_PG_URL)")
    name = f"carepath_bench_prefect_{os.getpid()}"
    url = pg.create_database(admin, name)
    stopper.cleanups.append(lambda: pg.drop_database(admin, name))
    try:
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        pg.drop_database(admin, name)


def start_serving(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m flows.serve`` (``carepath up`` against a server it did not start) in its own process group,
    stopped with the group, leaving nothing behind."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
