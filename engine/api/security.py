"""Bearer tokens at the door: who is asking (a :class:`~engine.app.access.Principal`), or 401.

The token is checked by :func:`engine.app.tokens.verify_token` (hashed at rest, compared in constant time); a
missing, malformed, unknown or revoked token is the same 401, and no token text is ever logged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.api.problems import Problem
from engine.app.access import Principal
from engine.app.context import App
from engine.app.tokens import verify_token

__all__ = ["Caller", "caller", "carepath_app"]

_bearer = HTTPBearer(auto_error=False, description="a token from `carepath token create`")


def carepath_app(request: Request) -> App:
    """The App this API serves (set by :func:`engine.api.create_api`)."""
    app: App = request.app.state.carepath
    return app


def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The principal of the request's bearer token; 401 (with ``WWW-Authenticate``) for anything else."""
    challenge = {"WWW-Authenticate": 'Bearer realm="carepath"'}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "unauthorized", "a bearer token is required (carepath token create)", challenge)
    principal = verify_token(carepath_app(request), credentials.credentials)
    if principal is None:
        raise Problem(401, "unauthorized", "the bearer token is not valid (unknown, revoked or mistyped)", challenge)
    return principal


#: A handler's parameter: the caller's principal.
Caller = Annotated[Principal, Depends(caller)]
