"""How every call reaches the server: one-line errors, one client per batch, sync callers, bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import httpx

from engine.errors import OrchestrationError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = [
    "CALL_DEADLINE",
    "T",
    "flush_logs",
    "gather_limited",
    "run_sync",
    "shared_client",
    "tls_context",
    "with_run_client",
]


T = TypeVar("T")

#: How long one of Carepath's calls to the server may take in all (seconds), the client's own retries included.
#: Prefect's client retries a silent or busy server for minutes (a 60 s request timeout, then backoff, five
#: times); a thread of the serving process stuck that long holds whatever waits on it (a deadline run's slot, the
#: sweep). After this the call fails like any outage, and the caller's fallback takes over: the sweep fires due
#: rungs in the serving process, a follow-up leaves its timers to the sweep.
CALL_DEADLINE = 60.0


def run_sync(awaitable: Coroutine[Any, Any, T]) -> T:
    """Run one of these coroutines from synchronous code, even when an event loop is running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    context = contextvars.copy_context()  # keeps Prefect's settings context (e.g. a temporary API URL)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, awaitable).result()


async def gather_limited(awaitables: Iterable[Coroutine[Any, Any, T]], limit: int) -> list[T]:
    """Await all, at most ``limit`` at a time, in order (a SQLite Prefect server answers 503 to more)."""
    gate = asyncio.Semaphore(limit)

    async def one(awaitable: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await awaitable

    return list(await asyncio.gather(*(one(a) for a in awaitables)))


@contextlib.asynccontextmanager
async def _api(what: str) -> AsyncIterator[None]:
    """Turn any Prefect/HTTP failure inside the block into ``OrchestrationError('<what>: <reason>')``."""
    from prefect.exceptions import PrefectException

    _require_api_url(what)
    try:
        yield
    except OrchestrationError:
        raise
    except (PrefectException, httpx.HTTPError, OSError, ValueError, RuntimeError) as exc:
        raise OrchestrationError(f"{what}: {_describe(exc)}") from exc


_SHARED: contextvars.ContextVar[PrefectClient | None] = contextvars.ContextVar("carepath_client", default=None)


@contextlib.asynccontextmanager
async def shared_client() -> AsyncIterator[None]:
    """Every call inside uses one client (one connection pool) instead of opening its own: a batch of timers or
    cancellations costs one client, which on a loaded machine is most of a call's time."""
    if _SHARED.get() is not None:
        yield
        return
    async with _api("cannot reach the Prefect server"), _new_client() as client:
        token = _SHARED.set(client)
        try:
            yield
        finally:
            _SHARED.reset(token)


@contextlib.asynccontextmanager
async def _client(what: str, deadline: float | None = None) -> AsyncIterator[PrefectClient]:
    """A client for the calls in the block, which must be done within ``deadline`` seconds (default
    :data:`CALL_DEADLINE`); any failure, that one included, is an OrchestrationError naming ``what``."""
    limit = CALL_DEADLINE if deadline is None else deadline
    shared = _SHARED.get()
    async with _api(what), _within(limit):
        if shared is not None:
            yield shared
            return
        async with _new_client() as client:
            yield client


@contextlib.asynccontextmanager
async def _within(seconds: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TimeoutError(f"the Prefect server did not answer within {seconds:g} s") from None


def _new_client() -> PrefectClient:
    """A Prefect client that shares this process's TLS context: building a client otherwise builds one, loading the
    whole CA bundle (10-25 ms of CPU, even for a plain ``http://`` server), and a serving process opens a client per
    claim tick, batch of timers or artifacts, and run (profiled under a 1,000-episode caseload: the largest single
    leaf of the serving process's samples).
    Inside a flow run, the run's own client, as :func:`prefect.get_client` gives it."""
    from prefect.client.orchestration import get_client
    from prefect.context import AsyncClientContext

    context = AsyncClientContext.get()
    run_client = context.client if context is not None else None
    if run_client is not None and getattr(run_client, "_loop", None) in (asyncio.get_running_loop(), None):
        return run_client  # the run's own (re-entrant): its loop is this one
    return get_client(httpx_settings=_httpx_settings())


async def with_run_client(awaitable: Awaitable[T]) -> T:
    """Await a flow run (``flow(..., return_state=True)``, ``run_flow_async``) inside Prefect's client context over a
    client built as :func:`_new_client` builds one: the run's engine and Carepath's calls in it use that client
    instead of building their own (Prefect's engine would build one per run, loading the CA bundle)."""
    from prefect.context import AsyncClientContext

    async with AsyncClientContext(httpx_settings=_httpx_settings()):
        return await awaitable


def _httpx_settings() -> dict[str, Any]:
    return {"verify": tls_context()}


def tls_context() -> ssl.SSLContext:
    """This process's TLS context for the Prefect API under the current Prefect settings (see :func:`_new_client`):
    for any HTTP client Carepath opens to the server (a health check too)."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    return _tls_context(api.tls_insecure_skip_verify, api.ssl_cert_file)


@functools.cache
def _tls_context(insecure: bool, cert_file: str | None) -> ssl.SSLContext:
    """The context Prefect's client builds for these settings (3.8.8), built once per process (an SSLContext is
    shared by any number of connections)."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    import certifi

    return ssl.create_default_context(cafile=cert_file or certifi.where())


def _require_api_url(what: str) -> None:
    # Without an API URL Prefect would silently start a throwaway in-process server; never what we want.
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise OrchestrationError(f"{what}: PREFECT_API_URL is not set (run `carepath up`, or point it at a server)")


async def _deployment(client: PrefectClient, name: str, *, missing_ok: bool = False) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(name)
    except ObjectNotFound:
        if missing_ok:
            return None
        raise OrchestrationError(f"no deployment named {name!r} on the Prefect server (is it being served?)") from None


async def _read_run(client: PrefectClient, run_id: UUID | str) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_flow_run(UUID(str(run_id)))
    except ObjectNotFound:
        return None
    except ValueError:
        raise OrchestrationError(f"{run_id!r} is not a flow run id") from None


def _describe(exc: BaseException) -> str:
    """One line for a user: the HTTP status and the server's ``detail`` when there is one."""
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            detail = exc.response.json().get("detail", exc.response.text)
        except ValueError:
            detail = exc.response.text
        return f"HTTP {exc.response.status_code}: {_one_line(str(detail))}"
    if isinstance(exc, httpx.ConnectError | httpx.TimeoutException):
        return f"the Prefect server is not reachable ({_one_line(str(exc)) or type(exc).__name__})"
    return _one_line(str(exc)) or type(exc).__name__


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def flush_logs() -> None:
    """Send the flow-run logs still queued in this process to the server, before it goes away (else Prefect prints
    "Error logging to API" at exit)."""
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
