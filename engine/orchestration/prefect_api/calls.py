"""How every call reaches the server: one-line errors, one client per batch, sync callers, bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import httpx

from engine.errors import OrchestrationError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

__all__ = ["T", "flush_logs", "gather_limited", "run_sync", "shared_client"]


T = TypeVar("T")


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
    from prefect.client.orchestration import get_client

    if _SHARED.get() is not None:
        yield
        return
    async with _api("cannot reach the Prefect server"), get_client() as client:
        token = _SHARED.set(client)
        try:
            yield
        finally:
            _SHARED.reset(token)


@contextlib.asynccontextmanager
async def _client(what: str) -> AsyncIterator[PrefectClient]:
    from prefect.client.orchestration import get_client

    shared = _SHARED.get()
    if shared is not None:
        async with _api(what):
            yield shared
        return
    async with _api(what), get_client() as client:
        yield client


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
