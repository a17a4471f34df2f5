"""The pages and forms. Handlers only translate: a form to one use case of :mod:`engine.app`, its result to a page
or a redirect back (``303``, so a reload never repeats a write); every POST checks its anti-forgery token first.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from engine.app.casefile import casefile, person_episodes
from engine.app.contacts import record_contact_as
from engine.app.tokens import verify_token
from engine.app.worklist import acknowledge_as, move_as, worklist
from engine.web.pages import SECURITY_HEADERS, page, refusals
from engine.web.session import (
    PageError,
    carepath_app,
    check_csrf,
    clear_session,
    csrf_for,
    keep_login,
    login_form,
    read_form,
    role_refusal,
    signed_in,
    start_session,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Form = Annotated[dict[str, str], Depends(read_form)]

#: Where a form may send the browser back to (never anywhere else).
_BACK = re.compile(r"/worklist|/episodes/[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
#: What a redirect's ``done`` may say (fixed words only: a page address never carries what someone typed).
DONE = {
    "ack": "Escalation acknowledged.",
    "contact": "Contact recorded.",
    "move": "Handoff moved.",
}


def _back(form: dict[str, str], done: str) -> RedirectResponse:
    target = form.get("back", "")
    target = target if _BACK.fullmatch(target) else "/worklist"
    return RedirectResponse(f"{target}?done={done}", 303, headers=SECURITY_HEADERS)


def _flash(request: Request) -> str:
    return DONE.get(request.query_params.get("done", ""), "")


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/worklist", 303)


@router.get("/web/carepath.css")
def stylesheet() -> Response:
    css = files("engine.web").joinpath("static/carepath.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


# ------------------------------------------------------------------------------------------------ login


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    csrf, fresh = login_form(request)
    response = page(request, "login.html", csrf=csrf, error="")
    keep_login(response, fresh)
    return response


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    check_csrf(request, form, "login")
    token = form.get("token", "").strip()
    principal = verify_token(carepath_app(request), token)
    if principal is None:
        csrf, fresh = login_form(request)
        refused = page(
            request, "login.html", 401, csrf=csrf, error="That token is not valid (unknown, revoked or mistyped)."
        )
        keep_login(refused, fresh)
        return refused
    if principal.role != "coordinator":
        raise PageError(403, "Coordinators only", role_refusal(principal.role))
    response = RedirectResponse("/worklist", 303, headers=SECURITY_HEADERS)
    start_session(response, token)
    return response


@router.post("/logout")
def logout(request: Request, form: Form) -> RedirectResponse:
    check_csrf(request, form)
    response = RedirectResponse("/login", 303, headers=SECURITY_HEADERS)
    clear_session(response)
    return response


# ------------------------------------------------------------------------------------------------ pages


@router.get("/worklist")
def worklist_page(request: Request) -> HTMLResponse:
    who = signed_in(request)
    with refusals():
        rows = worklist(carepath_app(request), who)
    now = carepath_app(request).clock.now()
    return page(request, "worklist.html", who=who, rows=rows, now=now, csrf=csrf_for(request), done=_flash(request))


@router.get("/episodes/{episode_id}")
def episode_page(episode_id: str, request: Request) -> HTMLResponse:
    who = signed_in(request)
    with refusals():
        case = casefile(carepath_app(request), who, episode_id)
    now = carepath_app(request).clock.now()
    return page(request, "episode.html", who=who, case=case, now=now, csrf=csrf_for(request), done=_flash(request))


@router.post("/lookup")
def lookup(request: Request, form: Form) -> HTMLResponse:
    who = signed_in(request)
    check_csrf(request, form)
    person = form.get("person", "").strip()
    with refusals():
        episodes = person_episodes(carepath_app(request), who, person)
    return page(request, "lookup.html", who=who, person=person, episodes=episodes, csrf=csrf_for(request), done="")


# ------------------------------------------------------------------------------------------------ actions


@router.post("/episodes/{episode_id}/contact")
def contact(episode_id: str, request: Request, form: Form) -> RedirectResponse:
    who = signed_in(request)
    check_csrf(request, form)
    with refusals():
        record_contact_as(carepath_app(request), who, episode_id, form.get("note", ""))
    return _back(form, "contact")


@router.post("/escalations/{escalation_id}/acknowledge")
def acknowledge(escalation_id: int, request: Request, form: Form) -> RedirectResponse:
    who = signed_in(request)
    check_csrf(request, form)
    with refusals():
        acknowledge_as(carepath_app(request), who, escalation_id)
    return _back(form, "ack")


@router.post("/handoffs/move")
def move(request: Request, form: Form) -> RedirectResponse:
    who = signed_in(request)
    check_csrf(request, form)
    action, _, party = form.get("move", "").partition(":")
    with refusals():
        move_as(carepath_app(request), who, form.get("handoff", ""), action, party, form.get("detail", ""))
    return _back(form, "move")
