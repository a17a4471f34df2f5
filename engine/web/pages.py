"""Rendering: the Jinja2 templates (autoescaped), the pages' security headers, and refusals as pages.

Every page says ``Cache-Control: no-store`` (they show program ids), allows no script at all and no framing
(``Content-Security-Policy``), and sends no referrer (a page address holds an episode id).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from engine.app.refusals import refusal
from engine.app.views import delivery_summary, escalation_title, fmt
from engine.episode.domain.handoff_terms import BSER_CODES
from engine.errors import CarepathError, one_line, printable
from engine.language.durations import show_duration
from engine.web.session import PageError

__all__ = ["SECURITY_HEADERS", "page", "refusals"]

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _ago(delta: timedelta | None) -> str:
    """``3d``, ``5h``, ``12m``: how long, to the minute."""
    if delta is None:
        return "-"
    minutes = max(int(delta.total_seconds() // 60), 0)
    return show_duration(timedelta(minutes=minutes)) if minutes else "<1m"


def _when(at: datetime | None) -> str:
    return fmt(at) + " UTC" if at else "-"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("engine.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(ago=_ago, when=_when)
_ENV.globals.update(
    delivery=delivery_summary, title=escalation_title, bser=lambda status: BSER_CODES.get(status, ("", ""))[0]
)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page rendered from ``template`` with ``context``, with the security headers."""
    html = _ENV.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


#: A refusal's page title, by its kind (kinds and statuses are the API's: :func:`engine.app.refusals.refusal`).
_TITLES = {
    "invalid-input": "Not accepted",
    "invalid-pathway": "Not accepted",
    "not-found": "Not found",
    "forbidden": "Not allowed",
    "refused": "Refused",
    "busy": "Busy, try again",
}


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a use case's refusal into a :class:`PageError` carrying its one-line message."""
    try:
        yield
    except CarepathError as exc:
        status, kind = refusal(exc)
        title = _TITLES.get(kind, "Unavailable")
        raise PageError(status, title, one_line(printable(str(exc)))) from exc
