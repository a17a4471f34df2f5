"""Pytest fixtures for tests that need a real Prefect server; load with ``pytest_plugins = ["prefect_harness"]``.

- ``prefect_server`` (session): ONE real ``prefect server start`` subprocess (SQLite, in a temporary folder, on
  a free port) for the whole session. It sets ``PREFECT_API_URL`` in ``os.environ`` (for subprocesses) and in
  Prefect's settings context (Prefect caches settings at import, so the environment alone would not reach a
  client in this process), checks that a client here really talks to it, and yields the API URL.
- ``serve_process`` (session): a factory ``serve_process(module, log_path=..., env=...) -> ServeProcess`` that
  runs ``python -m <module>`` (a module that serves deployments) against that server, in its own process
  group, so a test can stop it or SIGKILL it (crash tests); whatever is left is killed at the end.
  (:func:`start_serve_process` is the same without the fixture. Test modules should not import this module
  before pytest has loaded it as a plugin: take ``ServeProcess`` for annotations under ``TYPE_CHECKING``.)

Why not ``prefect_test_harness``: it runs the server inside the test process (so it cannot be killed or
restarted on its own) and is no faster to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import pytest

from engine.orchestration.server import OFFLINE_ENV, LocalServer, start_local_server, stop_process_group

__all__ = [
    "REPO_ROOT",
    "PrefectStorage",
    "ServeProcess",
    "ServeProcessFactory",
    "prefect_server",
    "serve_process",
    "start_serve_process",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PrefectStorage:
    """Where the session's Prefect server keeps everything: its database (a PostgreSQL URL, or the SQLite file
    under ``home``) and its log. The privacy tests read all of it."""

    home: Path
    log_path: Path
    database_url: str | None

    @property
    def sqlite_file(self) -> Path:
        return self.home / "prefect.db"


@pytest.fixture(scope="session")
def prefect_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStorage]:
    base = tmp_path_factory.mktemp("prefect-server")
    with ExitStack() as stack:
        yield PrefectStorage(base / "home", base / "server.log", _server_database(stack))


@pytest.fixture(scope="session")
def prefect_server(prefect_storage: PrefectStorage) -> Iterator[str]:
    """The API URL of a Prefect server that lives for the whole test session."""
    server = start_local_server(
        prefect_storage.home, log_path=prefect_storage.log_path, database_url=prefect_storage.database_url
    )
    yield from _serving(server)


def _server_database(stack: ExitStack) -> str | None:
    """PostgreSQL for the session's Prefect server when it answers (what a production server runs on), else None
    (SQLite). Prefect's SQLite database can stay locked after a client is SIGKILLed mid-request, which the crash
    tests do on purpose; CAREPATH_TEST_PREFECT_SQLITE=1 forces SQLite anyway."""
    from store_fixtures import pg_admin_url, temporary_pg_database

    if os.environ.get("CAREPATH_TEST_PREFECT_SQLITE") or pg_admin_url() is None:
        return None
    url = stack.enter_context(temporary_pg_database("carepath_prefect"))
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def _serving(server: LocalServer) -> Iterator[str]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from engine.orchestration.prefect_api import run_sync

    saved = {key: os.environ.get(key) for key in (*OFFLINE_ENV, "PREFECT_API_URL")}
    os.environ.update(OFFLINE_ENV)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            assert get_current_settings().api.url == server.api_url

            async def client_url() -> str:
                async with get_client() as client:
                    assert await client.api_healthcheck() is None, "the Prefect server is not healthy"
                    return str(client.api_url)

            assert run_sync(client_url()).rstrip("/") == server.api_url, "the Prefect client talks to another server"
            yield server.api_url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@dataclass
class ServeProcess:
    """A serving subprocess; :meth:`kill` is a crash (SIGKILL, no cleanup), :meth:`stop` a clean shutdown."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        stop_process_group(self.process, grace=0)

    def stop(self, grace: float = 10.0) -> None:
        stop_process_group(self.process, grace=grace)

    def running(self) -> bool:
        return self.process.poll() is None

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


def start_serve_process(
    module: str, api_url: str, *, log_path: Path, env: Mapping[str, str] | None = None
) -> ServeProcess:
    """Run ``python -m module`` from the repository root with ``PREFECT_API_URL=api_url`` (plus ``env``).

    It returns at once; wait with ``engine.orchestration.prefect_api.wait_for_deployments(..., polled_since=...)``.
    """
    child_env = {**os.environ, **OFFLINE_ENV, "PREFECT_API_URL": api_url, **(env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO_ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return ServeProcess(process=process, log_path=log_path)


class ServeProcessFactory(Protocol):
    """Type of the ``serve_process`` fixture."""

    def __call__(self, module: str, *, log_path: Path, env: Mapping[str, str] | None = None) -> ServeProcess: ...


@pytest.fixture(scope="session")
def serve_process(prefect_server: str) -> Iterator[ServeProcessFactory]:
    """Start serving subprocesses against the session's server; any still running at the end is killed."""
    started: list[ServeProcess] = []

    def start(module: str, *, log_path: Path, env: Mapping[str, str] | None = None) -> ServeProcess:
        started.append(start_serve_process(module, prefect_server, log_path=log_path, env=env))
        return started[-1]

    yield start
    for process in started:
        process.kill()
