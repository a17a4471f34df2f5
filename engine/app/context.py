"""The application context: settings, the store, the clock and the ports, resolved once per process.

Every face (the CLI, the flows, the demo, the tests) builds one :class:`App` and passes it to the use cases in
:mod:`engine.app`. :func:`engine.orchestration.wiring.production_app` wires the real ports (Prefect, apprise);
:func:`engine.app.inline.inline_app` wires in-memory ones.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from engine import store
from engine.app.ports import Dispatcher, Notifier, Publisher, Scheduler
from engine.app.settings import Settings
from engine.app.throttle import Throttle
from engine.clock import Clock, clock_from_config

if TYPE_CHECKING:
    from engine.app.service import EpisodeService

__all__ = ["CLOCK_SETTING", "App", "bound", "bound_app", "current_app"]

#: The store setting that holds the clock every process of one data folder shares (the demo's compressed clock).
CLOCK_SETTING = "clock"


@dataclass
class App:
    """One process's view of Carepath: where things are, and the ports the use cases act through."""

    settings: Settings
    scheduler: Scheduler
    notifier: Notifier
    publisher: Publisher
    dispatcher: Dispatcher
    #: Set by tests and simulations; otherwise the clock stored in the store (default: the wall clock).
    fixed_clock: Clock | None = field(default=None)
    #: How often this process rebuilds the program-wide artifacts (:mod:`engine.app.throttle`); default: each time.
    throttle: Throttle = field(default_factory=Throttle)

    @cached_property
    def engine(self) -> Engine:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        engine = store.make_engine(self.settings.database_url)
        store.migrate(engine)
        return engine

    @cached_property
    def clock(self) -> Clock:
        if self.fixed_clock is not None:
            return self.fixed_clock
        return clock_from_config(store.get_setting(self.engine, CLOCK_SETTING))

    def set_clock(self, clock: Clock) -> None:
        """Share ``clock`` with every process of this data folder (stored), and use it here."""
        store.put_setting(self.engine, CLOCK_SETTING, clock.to_config())
        self.__dict__["clock"] = clock
        self.__dict__.pop("service", None)

    @cached_property
    def service(self) -> EpisodeService:
        from engine.app.service import EpisodeService  # lazily: keeps read-only commands light

        return EpisodeService(self.engine, self.clock)

    def close(self) -> None:
        """Release the store's connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()


_CURRENT: contextvars.ContextVar[App | None] = contextvars.ContextVar("carepath_app", default=None)
_PROCESS_APPS: dict[Settings, App] = {}


@contextlib.contextmanager
def bound(app: App) -> Iterator[App]:
    """Make ``app`` the one that flow runs started in this context use (an in-process run shares its caller's)."""
    token = _CURRENT.set(app)
    try:
        yield app
    finally:
        _CURRENT.reset(token)


def bound_app() -> App | None:
    """The App :func:`bound` in this context, if any (work handed to another thread in a copy of it uses it)."""
    return _CURRENT.get()


def current_app(default: Callable[[Settings], App]) -> App:
    """The App a flow run uses: its caller's (an in-process run shares it), else this process's, built once by
    ``default`` from the environment (a deadline run's own process)."""
    app = _CURRENT.get()
    if app is not None:
        return app
    settings = Settings.from_env()
    if settings not in _PROCESS_APPS:
        _PROCESS_APPS[settings] = default(settings)
    return _PROCESS_APPS[settings]
