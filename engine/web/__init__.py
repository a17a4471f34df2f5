"""Carepath's coordinator pages: the worklist (who is falling through now, most urgent first), an episode's whole
record, and people found by program id; server-rendered HTML (Jinja2 templates, no script), served beside the API
by :func:`engine.api.create_api`.

It may import the application layer, the store's read models and the pure packages, never the API. Handlers only
translate forms to the use cases of :mod:`engine.app` (the worklist's order is :mod:`engine.app.triage`'s).

- :mod:`.session`: the session cookie, anti-forgery tokens, forms;
- :mod:`.pages`: the templates, the security headers, refusals as pages;
- :mod:`.routes`: the pages and forms.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from engine.web.pages import SECURITY_HEADERS, page
from engine.web.routes import router
from engine.web.session import SESSION_COOKIE, LoginRequired, PageError, clear_session

__all__ = ["install", "router"]


def install(api: FastAPI) -> None:
    """Serve the pages on ``api``: its routes, and its refusals as pages (no session: the login page)."""
    api.include_router(router)

    @api.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        response = RedirectResponse("/login", 303, headers=SECURITY_HEADERS)
        if request.cookies.get(SESSION_COOKIE):
            clear_session(response)
        return response

    @api.exception_handler(PageError)
    async def _refused(request: Request, exc: PageError) -> HTMLResponse:
        return page(request, "message.html", exc.status, title=exc.title, message=exc.message)
