"""Serving the API with uvicorn: in the foreground (``carepath api``) or on a thread beside ``carepath up``.

Uvicorn's access log is off: a URL can carry an id, and what reaches the logs is opaque ids only (the handlers
log nothing about people either).
"""

from __future__ import annotations

import threading

import uvicorn

from engine.api import create_api
from engine.app.context import App
from engine.errors import CarepathError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ApiServer"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8400
#: On stopping, how long the requests answered but not yet followed up get to be followed up (the sweep does the
#: rest: they are in the store).
FLUSH_ON_STOP = 30.0


class ApiServer:
    """One uvicorn server for ``app``'s API on ``host:port``. Give it an App whose dispatcher defers follow-ups
    (``dispatching_app(settings, deferred=True)``): a request is answered from the store, not after Prefect."""

    def __init__(self, app: App, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.app = app
        config = uvicorn.Config(
            create_api(app), host=host, port=port, access_log=False, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in this thread until stopped (Ctrl-C)."""
        self.server.run()
        self.app.dispatcher.flush(FLUSH_ON_STOP)
        if not self.server.started:
            raise CarepathError(f"the API could not listen on {self.url} (is the port in use? see --api-port)")

    def start(self) -> None:
        """Serve on a daemon thread; returns once it listens (or raises if it could not)."""
        self._thread = threading.Thread(target=self.server.run, name="carepath-api", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise CarepathError(f"the API could not listen on {self.url} (is the port in use? see --api-port)")
            self._thread.join(0.05)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"  # the port the system chose, for port 0

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.app.dispatcher.flush(FLUSH_ON_STOP)
