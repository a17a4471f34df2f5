"""A real HTTP receiver on loopback, for tests that deliver notifications or webhooks without mocks.

``HttpReceiver`` runs a :class:`~http.server.ThreadingHTTPServer` on ``127.0.0.1`` at a free port, records every
request (method, path, headers, body, and the body parsed as JSON or as a form when it is one) and answers with
scripted status codes, so a test can make a receiver fail the first two requests and then succeed::

    with HttpReceiver(statuses=[500, 500]) as rx:     # then 200 for every later request
        deliver(note, [Contact("supervisor", 0, rx.url("json", "/hook"))], now=clock.now, sleep=lambda s: None)
        assert [r.status for r in rx.requests] == [500, 500, 200]

Import it from a test module next to it (``from http_receiver import HttpReceiver, http_receiver``); the
``http_receiver`` fixture yields a started receiver and stops it after the test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import pytest

__all__ = ["HttpReceiver", "ReceivedRequest", "http_receiver"]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as it arrived, and the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HttpReceiver:
    """Records requests on ``127.0.0.1:<free port>``; answers ``statuses`` in order, then ``default_status``."""

    def __init__(self, statuses: Iterable[int] = (), *, default_status: int = 200) -> None:
        self._lock = threading.Lock()
        self._script = list(statuses)
        self._default = default_status
        self._requests: list[ReceivedRequest] = []
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        """An apprise URL pointing here, e.g. ``json://127.0.0.1:40123/hook`` (``form``, ``xml``, ...)."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def script(self, *statuses: int, default_status: int | None = None) -> None:
        """Answer the next requests with ``statuses`` in order (then the default status)."""
        with self._lock:
            self._script = list(statuses)
            if default_status is not None:
                self._default = default_status

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; raises ``TimeoutError`` otherwise."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"{len(self._requests)} of {count} requests arrived within {timeout}s")
            return list(self._requests)

    # -- serving -----------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            status = self._script.pop(0) if self._script else self._default
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        parsed_json: Any = None
        form: dict[str, str] = {}
        if content_type == "application/json" or body[:1] in (b"{", b"["):
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        elif content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        request = ReceivedRequest(
            method=handler.command,
            path=handler.path,
            headers={k: v for k, v in handler.headers.items()},
            body=body,
            status=status,
            json=parsed_json,
            form=form,
        )
        with self._arrived:  # recorded before answering, so a client that got its answer sees its request here
            self._requests.append(request)
            self._arrived.notify_all()
        reply = json.dumps({"status": status}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A started :class:`HttpReceiver` that answers 200; script failures with ``http_receiver.script(500, 500)``."""
    with HttpReceiver() as receiver:
        yield receiver
