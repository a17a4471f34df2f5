"""Carepath's Prefect clients share one TLS context per process, and it is the one Prefect would build.

Building a Prefect client builds a TLS context, which loads the whole CA bundle (about 24 ms of CPU measured here);
a serving process opens a client per claim tick, batch and run, so Carepath builds the context once and hands it to
every client it opens. What must not change with that: certificates are verified as Prefect verifies them, and
Prefect's own settings (``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``, ``PREFECT_API_SSL_CERT_FILE``) still apply. No
server is needed: building a client makes no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import certifi
import pytest
from prefect.settings import (
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    PREFECT_API_URL,
    temporary_settings,
)

from engine.errors import OrchestrationError
from engine.orchestration.prefect_api import calls
from engine.orchestration.prefect_api.calls import _new_client
from engine.orchestration.prefect_api.runs import get_run_state

API = "https://prefect.example.invalid/api"


def _tls_of(client: Any) -> ssl.SSLContext:
    context = client._client._transport._pool._ssl_context  # httpx's pool holds the context it was given
    assert isinstance(context, ssl.SSLContext)
    return context


def _two_clients(settings: dict[Any, Any] | None = None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    async def build() -> tuple[ssl.SSLContext, ssl.SSLContext]:
        return _tls_of(_new_client()), _tls_of(_new_client())

    with temporary_settings(updates={PREFECT_API_URL: API, **(settings or {})}):
        return asyncio.run(build())


def test_clients_share_one_context_that_verifies_certificates_as_prefect_does() -> None:
    first, second = _two_clients()
    assert first is second, "one context per process, not one per client"
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert len(first.get_ca_certs()) > 50, "certifi's bundle, as Prefect loads it"


def test_prefects_insecure_setting_still_turns_verification_off() -> None:
    first, second = _two_clients({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True})
    assert first is second
    assert first.verify_mode == ssl.CERT_NONE and not first.check_hostname
    assert _two_clients()[0].verify_mode == ssl.CERT_REQUIRED, "and back on without it"


def test_prefects_cert_file_setting_is_the_only_authority_trusted(tmp_path: Path) -> None:
    bundle = Path(certifi.where()).read_text()
    one = bundle[bundle.index("-----BEGIN CERTIFICATE-----") :]
    one = one[: one.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    (tmp_path / "ca.pem").write_text(one)
    first, _ = _two_clients({PREFECT_API_SSL_CERT_FILE: str(tmp_path / "ca.pem")})
    assert len(first.get_ca_certs()) == 1 and first.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("insecure", [False, True])
def test_a_context_is_built_once_for_each_setting(insecure: bool) -> None:
    settings = {PREFECT_API_TLS_INSECURE_SKIP_VERIFY: insecure}
    assert _two_clients(settings)[0] is _two_clients(settings)[1]


@contextlib.contextmanager
def silent_api() -> Iterator[None]:
    """Prefect's API URL pointed at a loopback socket that takes connections and never answers (a wedged server)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nothing ever reads or answers
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{silent.getsockname()[1]}/api"}):
            yield


def test_a_call_to_a_server_that_never_answers_fails_within_the_call_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that takes the connection and never answers (wedged) must not hold a Carepath thread for the minutes
    Prefect's client would retry: the call fails like an outage, naming what it was for, and the caller's fallback
    (the sweep in the serving process) takes over."""
    monkeypatch.setattr(calls, "CALL_DEADLINE", 0.5)
    expected = r"cannot read flow run .*did not answer within 0.5 s"
    with silent_api(), pytest.raises(OrchestrationError, match=expected):
        calls.run_sync(get_run_state(uuid4()))


def test_a_batch_of_artifacts_stops_trying_once_the_server_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A follow-up's artifacts (one per episode of a batch) must not each wait the whole deadline for a server that
    is gone: the batch gives up on the rest after the first silence, and every artifact is reported unpublished."""
    from engine.orchestration.prefect_api.artifacts import publish_artifacts

    monkeypatch.setattr(calls, "CALL_DEADLINE", 0.5)
    versions = [(f"episode-ep-{n}", "# synthetic", None) for n in range(5)]
    with silent_api():
        failed = calls.run_sync(publish_artifacts(versions, 1))
    assert len(failed) == 5
    assert "did not answer within 0.5 s" in failed[0]
    assert all("not tried" in line for line in failed[1:]), failed
