"""Where a Carepath process finds its data, its database, its clock and its Prefect server.

Every process (the CLI, ``carepath up``'s serving process, a flow run's subprocess) builds its
:class:`Runtime` the same way, from the environment and the data folder, so they all agree:

- data folder: ``CAREPATH_HOME`` or ``./.carepath``;
- store: ``CAREPATH_DATABASE_URL`` or SQLite in the data folder;
- clock: the one stored in the store's settings (``carepath demo`` stores a compressed one), else the wall;
- Prefect: ``PREFECT_API_URL`` or the address ``carepath up`` wrote in the data folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from engine import store
from engine.clock import Clock, clock_from_config
from engine.errors import OrchestrationError

if TYPE_CHECKING:
    from engine.service import EpisodeService

__all__ = ["CLOCK_SETTING", "Runtime", "runtime_from_env"]

CLOCK_SETTING = "clock"
_API_FILE = "prefect-api-url"


@dataclass
class Runtime:
    """The resolved environment of one Carepath process."""

    home: Path
    database_url: str
    env: Mapping[str, str]

    @cached_property
    def engine(self) -> Engine:
        self.home.mkdir(parents=True, exist_ok=True)
        engine = store.make_engine(self.database_url)
        store.migrate(engine)
        return engine

    @cached_property
    def clock(self) -> Clock:
        return clock_from_config(store.get_setting(self.engine, CLOCK_SETTING))

    def set_clock(self, clock: Clock) -> None:
        store.put_setting(self.engine, CLOCK_SETTING, clock.to_config())
        self.__dict__["clock"] = clock

    @cached_property
    def service(self) -> EpisodeService:
        from engine.service import EpisodeService  # lazily: keeps CLI start-up light

        return EpisodeService(self.engine, self.clock)

    @property
    def api_url_file(self) -> Path:
        return self.home / _API_FILE

    def api_url(self) -> str | None:
        """The Prefect API to use: ``PREFECT_API_URL``, else the one ``carepath up`` recorded."""
        if self.env.get("PREFECT_API_URL"):
            return self.env["PREFECT_API_URL"]
        if self.api_url_file.exists():
            return self.api_url_file.read_text().strip() or None
        return None

    def require_api(self) -> str:
        """The reachable Prefect API, or a clear error that says how to start one."""
        from engine.prefect_server import api_reachable

        url = self.api_url()
        if not url:
            raise OrchestrationError(
                "no Prefect server is known: start one with `carepath up` (or set PREFECT_API_URL)"
            )
        if not api_reachable(url):
            raise OrchestrationError(f"the Prefect server at {url} is not answering: is `carepath up` running?")
        os.environ["PREFECT_API_URL"] = url
        return url


_RUNTIMES: dict[tuple[str, ...], Runtime] = {}
_SHAPING = ("CAREPATH_HOME", "CAREPATH_DATABASE_URL", "PREFECT_API_URL", "CAREPATH_ROSTER")


def runtime_from_env(env: Mapping[str, str] | None = None) -> Runtime:
    """The runtime this process should use: one per configuration, so its engine (and pool) is reused by every
    task of every flow run in the process, and the store is migrated once."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("CAREPATH_HOME") or ".carepath").resolve()
    key = (str(home), *(env.get(name, "") for name in _SHAPING))
    if key not in _RUNTIMES:
        _RUNTIMES[key] = Runtime(home=home, database_url=store.database_url(home, env), env=env)
    return _RUNTIMES[key]
