"""Carepath's network face: ``/api/v1`` for coordinators, operators and auditors, ``/fhir/R4`` for receiving
programs, both behind bearer tokens (``carepath token create``), both only translating to the use cases of
:mod:`engine.app` (no logic in handlers; who may do what is :mod:`engine.app.access`'s).

- :mod:`.security`: the bearer token -> a principal, or 401;
- :mod:`.problems`: every refusal as RFC 9457 problem details (``OperationOutcome`` under ``/fhir``);
- :mod:`.idempotency`: ``Idempotency-Key`` on every write;
- :mod:`.v1` and :mod:`.fhir_r4`: the routes; :mod:`.bodies` and :mod:`.shapes`: what goes in and out;
- :mod:`.serving`: uvicorn, alone (``carepath api``) or beside ``carepath up``.

The coordinators' web pages (:mod:`engine.web`) are served by the same application.
"""

from __future__ import annotations

from fastapi import FastAPI

from engine import web
from engine.api import fhir_r4, problems, v1
from engine.app.context import App

__all__ = ["create_api"]

DESCRIPTION = """Carepath's HTTP API. Every request needs `Authorization: Bearer <token>` (from
`carepath token create --role ROLE`). Errors are RFC 9457 problem details; writes accept an `Idempotency-Key`
header. Receiving programs use the FHIR R4 endpoints under `/fhir/R4` (Task, with BSeR business statuses)."""


def create_api(app: App) -> FastAPI:
    """The ASGI application serving ``app`` (its store, clock and ports)."""
    api = FastAPI(
        title="Carepath",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.carepath = app
    problems.install(api)
    api.include_router(v1.router)
    api.include_router(fhir_r4.router)
    web.install(api)  # the coordinators' pages: /, /login, /worklist, /episodes/{id}
    return api
