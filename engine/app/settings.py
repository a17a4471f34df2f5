"""Configuration, read once per process from the environment into a frozen :class:`Settings`, then passed down.

- data folder: ``CAREPATH_HOME`` or ``./.carepath``;
- store: ``CAREPATH_DATABASE_URL`` or SQLite in the data folder;
- roster: ``CAREPATH_ROSTER`` or ``<home>/roster.yaml`` when it exists;
- Prefect: ``PREFECT_API_URL``, else the address ``carepath up`` recorded in the data folder;
- pathways folder: ``CAREPATH_PATHWAYS`` or ``pathways``;
- serving beside other serving processes: ``CAREPATH_SERVING_SHARED`` (``1``/``true``; default false).

Nothing else in Carepath reads the environment (apart from ``${NAME}`` references in a roster, resolved against
:attr:`Settings.env`), and nothing writes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import CarepathError, quote

__all__ = ["API_FILE", "DEADLINE_PROCESSES_ENV", "SERVING_SHARED_ENV", "Settings"]

#: Where ``carepath up`` records the address of the Prefect server it started, for other commands.
API_FILE = "prefect-api-url"
#: Set on a serving process that serves the deployments beside others (``carepath up --workers``' extra processes,
#: every serving container of a multi-host install).
SERVING_SHARED_ENV = "CAREPATH_SERVING_SHARED"
#: Set to run every deadline run in a process of its own (Prefect's runner) instead of in the serving process.
DEADLINE_PROCESSES_ENV = "CAREPATH_DEADLINE_PROCESSES"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """Where this process finds its data, store, roster, pathways and Prefect server."""

    home: Path
    database_url: str
    pathways: Path = Path("pathways")
    roster: Path | None = None
    prefect_api_url: str | None = None
    #: This process serves the deployments beside other serving processes: at (re)start it must not take back the
    #: runs that look orphaned (a live sibling may hold them); the sweep's reconciler requeues runs stuck picked
    #: up past a bound, whoever held them. False: the only serving process (``carepath up``, one ``flows.serve``).
    serving_shared: bool = False
    #: Deadline runs each start a process of their own (Prefect's runner), as before issue 12; default False: the
    #: serving process runs them itself (:mod:`engine.orchestration.in_process`).
    deadline_processes: bool = False
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of a process started with ``env`` (default: this process's environment)."""
        values = dict(os.environ if env is None else env)
        home = Path(values.get("CAREPATH_HOME") or ".carepath").resolve()
        database_url = values.get("CAREPATH_DATABASE_URL") or f"sqlite:///{home / 'carepath.db'}"
        roster = values.get("CAREPATH_ROSTER")
        return cls(
            home=home,
            database_url=database_url,
            pathways=Path(values.get("CAREPATH_PATHWAYS") or "pathways"),
            roster=Path(roster) if roster else None,
            prefect_api_url=values.get("PREFECT_API_URL") or None,
            serving_shared=_flag(SERVING_SHARED_ENV, values.get(SERVING_SHARED_ENV, "")),
            deadline_processes=_flag(DEADLINE_PROCESSES_ENV, values.get(DEADLINE_PROCESSES_ENV, "")),
            env=values,
        )

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields replaced (e.g. the API address of a server this process just started)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def roster_file(self) -> Path | None:
        """The roster to use: the configured one, else ``<home>/roster.yaml`` if it exists, else None."""
        if self.roster is not None:
            return self.roster
        default = self.home / "roster.yaml"
        return default if default.exists() else None

    @property
    def api_url_file(self) -> Path:
        return self.home / API_FILE

    def api_url(self) -> str | None:
        """The Prefect API: ``PREFECT_API_URL``, else the address ``carepath up`` recorded, else None."""
        if self.prefect_api_url:
            return self.prefect_api_url
        try:
            return self.api_url_file.read_text().strip() or None
        except OSError:
            return None

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment for a child process of Carepath: this one's, telemetry off, plus ``extra``."""
        return {**self.env, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _flag(name: str, text: str) -> bool:
    """An on/off setting: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (or empty)."""
    value = text.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise CarepathError(f"{name}: {quote(text)} is not true or false (use 1 or 0)")
