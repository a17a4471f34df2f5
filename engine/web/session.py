"""Who is at the browser: the session cookie, the login form's pre-session cookie, anti-forgery tokens and forms.

The session cookie holds the coordinator's token itself, checked on every request by
:func:`engine.app.tokens.verify_token` (so a revoked token ends its sessions at once); it is ``HttpOnly`` (no
script reads it), ``Secure`` (never sent over plain HTTP to anything but loopback), ``SameSite=Strict`` (no other
site's page makes the browser send it) and lives at most :data:`SESSION_MAX_AGE`. Every form carries an
anti-forgery token (:mod:`engine.app.formkeys`); the login form's is tied to a random pre-session cookie, so a
login cannot be forged either. Nothing here logs a cookie, a token or a form.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl

from fastapi import Request, Response

from engine.app.access import Principal
from engine.app.context import App
from engine.app.formkeys import check_form_token, form_token
from engine.app.tokens import verify_token

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "LoginRequired",
    "PageError",
    "carepath_app",
    "check_csrf",
    "clear_session",
    "csrf_for",
    "keep_login",
    "login_form",
    "read_form",
    "role_refusal",
    "signed_in",
    "start_session",
]

SESSION_COOKIE = "carepath_session"
LOGIN_COOKIE = "carepath_login"
#: A working shift: after it the browser forgets the session and the coordinator logs in again.
SESSION_MAX_AGE = 8 * 3600
_LOGIN_MAX_AGE = 3600
#: The largest form Carepath accepts (a note is at most 500 characters).
FORM_MAX = 16_384


class LoginRequired(Exception):
    """No session, or one whose token is no longer valid: the answer is the login page."""


class PageError(Exception):
    """A refusal shown as a page: HTTP status, a title, one line saying why."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def carepath_app(request: Request) -> App:
    app: App = request.app.state.carepath
    return app


def _set(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict")


def _clear(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


def signed_in(request: Request) -> Principal:
    """The coordinator of this browser's session; :class:`LoginRequired` without a valid one, :class:`PageError`
    (403) for a token of another role."""
    token = request.cookies.get(SESSION_COOKIE)
    principal = verify_token(carepath_app(request), token) if token else None
    if principal is None:
        raise LoginRequired()
    if principal.role != "coordinator":
        raise PageError(403, "Coordinators only", role_refusal(principal.role))
    return principal


def role_refusal(role: str) -> str:
    return (
        f"The worklist is for coordinator tokens (carepath token create --role coordinator); this is a {role} token. "
        "Receiving programs use /fhir/R4, operators and auditors /api/v1."
    )


def login_form(request: Request) -> tuple[str, str | None]:
    """The login form's anti-forgery token, and a fresh pre-session nonce to set (:func:`keep_login`) when the
    browser has none yet."""
    nonce = fresh = request.cookies.get(LOGIN_COOKIE)
    if not nonce:
        nonce = fresh = secrets.token_urlsafe(32)
    else:
        fresh = None
    return form_token(carepath_app(request), "login", nonce), fresh


def keep_login(response: Response, fresh: str | None) -> None:
    if fresh:
        _set(response, LOGIN_COOKIE, fresh, _LOGIN_MAX_AGE)


def start_session(response: Response, token: str) -> None:
    _set(response, SESSION_COOKIE, token, SESSION_MAX_AGE)
    _clear(response, LOGIN_COOKIE)


def clear_session(response: Response) -> None:
    _clear(response, SESSION_COOKIE)


def csrf_for(request: Request) -> str:
    """The anti-forgery token of this browser's session, for the page's forms."""
    return form_token(carepath_app(request), "session", request.cookies.get(SESSION_COOKIE, ""))


def check_csrf(request: Request, form: dict[str, str], purpose: str = "session") -> None:
    """Refuse (403) a form whose anti-forgery token is not this browser's."""
    cookie = request.cookies.get(LOGIN_COOKIE if purpose == "login" else SESSION_COOKIE)
    if not check_form_token(carepath_app(request), purpose, cookie, form.get("csrf")):
        raise PageError(403, "Form refused", "This form did not come from this session's page; reload and try again.")


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form as text fields (one value each; an empty body is an empty form); :class:`PageError` for
    anything else."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX:
            raise PageError(413, "Form too large", f"A form is at most {FORM_MAX:,} bytes.")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if body and kind != "application/x-www-form-urlencoded":
        raise PageError(415, "Not a form", "Expected a form (application/x-www-form-urlencoded).")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "Bad form", "The form could not be read.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise PageError(400, "Bad form", f"The field {key[:40]!r} was sent twice.")
        form[key] = value
    return form
