"""Anti-forgery tokens for the web forms: a keyed hash (HMAC-SHA256) of the browser's session cookie.

A page carries the token of its session in every form; a forged request from another site has the cookie (if a
browser sent it at all: the cookie is ``SameSite=Strict``) but cannot read the page, so it lacks the token. The
key is made once per store and kept in its settings, so every process serving the same store agrees, and it
never leaves the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from engine import store
from engine.app.context import App

__all__ = ["FORM_KEY", "check_form_token", "form_token"]

#: The store setting holding the key (64 hex characters).
FORM_KEY = "web-form-key"


def _key(app: App) -> bytes:
    key = store.get_setting(app.engine, FORM_KEY)
    if key is None:
        store.put_setting(app.engine, FORM_KEY, secrets.token_hex(32))
        key = store.get_setting(app.engine, FORM_KEY)
    return bytes.fromhex(key)


def form_token(app: App, purpose: str, session: str) -> str:
    """The token of ``session`` (a cookie's value) for ``purpose`` (``login`` or ``session``)."""
    return hmac.new(_key(app), f"{purpose}\0{session}".encode(), hashlib.sha256).hexdigest()


def check_form_token(app: App, purpose: str, session: str | None, token: str | None) -> bool:
    """Whether ``token`` is ``session``'s for ``purpose`` (compared in constant time); False when either is missing."""
    if not session or not token:
        return False
    return hmac.compare_digest(form_token(app, purpose, session), token)
