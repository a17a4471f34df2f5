"""Coordinator and operator commands: ``up``, ``enroll``, ``event``, ``status``, ``episodes``, ``demo``.

Writes go through the store first and then Prefect; a command checks that Prefect answers before it writes,
so a refused command changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.cli import command
from engine.cli_pathways import parse_params
from engine.clock import utc
from engine.errors import CarepathError, PathwayError

__all__ = ["check_roster", "parse_data", "register_pathways", "run_event", "serve_forever"]


def parse_data(pairs: list[str]) -> dict[str, Any]:
    """``["insurance=medicaid", "needs_wm=true", "dose=16"]`` -> typed values (bool, number, text)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CarepathError(f"--data wants KEY=VALUE, got {pair!r}")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out


def register_pathways(rt: Any, folder: str = "pathways") -> list[Any]:
    """Validate every pathway in ``folder`` and pin each (id, version) in the store; stop on any error."""
    from engine.loader import discover, load_pathway

    paths, problems = discover([folder])
    specs, errors = [], list(problems)
    for path in paths:
        result = load_pathway(path)
        errors += [d for d in result.diagnostics if d.severity == "error"]
        if result.ok and result.spec is not None and result.source_text is not None:
            rt.service.register_pathway(result.spec, result.source_text)
            specs.append(result.spec)
    if errors:
        raise PathwayError(errors)
    return specs


#: Prefect's console chatter (run links, task states) is for operators; coordinators get one line per command.
QUIET_PREFECT = {
    f"PREFECT_LOGGING_HANDLERS_{h}_LEVEL": "CRITICAL" for h in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS")
}


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def run_event(rt: Any, episode_id: str, event: str, data: dict[str, Any], event_id: str | None) -> Any:
    """Run the pathway's event flow in this process; raise EventRejected-like errors as CarepathError."""
    rt.require_api()  # before Prefect is imported: it reads its settings once
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    from engine.compile import flow_for

    episode = rt.service.episode(episode_id)
    flow = flow_for(episode.pathway_id, episode.pathway_version, "event")
    state = _run(flow(episode_id=episode_id, event=event, data=data, event_id=event_id, return_state=True))
    if state.is_failed():
        raise CarepathError(state.message.removeprefix("rejected: ") if state.message else "the event flow failed")
    return state


# ------------------------------------------------------------------------------------------------------ up


def check_roster(rt: Any) -> None:
    """Load the roster (``CAREPATH_ROSTER`` or ``<home>/roster.yaml``) if there is one: a bad roster stops start-up."""
    from engine.roster import load_roster, roster_path

    path = roster_path(None, rt.env) or (rt.home / "roster.yaml")
    if path.exists():
        roster = load_roster(path, env=rt.env)
        print(f"roster {path}: {len(roster.roles())} roles")
    else:
        print("no roster: escalations are raised and shown in Prefect and `carepath status`, but not sent")


def serve_forever(rt: Any, folder: str, port: int | None, *, ready: Any = None) -> None:
    """Register pathways, start a local Prefect server unless ``PREFECT_API_URL`` is set, serve every deployment."""
    from engine.prefect_server import start_local_server

    os.environ["CAREPATH_HOME"] = str(rt.home)
    specs = register_pathways(rt, folder)
    check_roster(rt)
    server = None
    if not rt.env.get("PREFECT_API_URL"):
        server = start_local_server(rt.home / "prefect", port=port, log_path=rt.home / "prefect-server.log")
        rt.api_url_file.write_text(server.api_url)
        os.environ["PREFECT_API_URL"] = server.api_url
        ui = server.ui_url
    else:
        ui = rt.env["PREFECT_API_URL"].removesuffix("/api")
    try:
        # Prefect reads its settings once, on first import: only now that the API address is known
        from engine.compile import compile_deployments, sweep_deployment
        from engine.prefect_ops import serve_deployments

        deployments = [d for spec in specs for d in compile_deployments(spec)] + [sweep_deployment()]
        print(f"Carepath is serving {len(specs)} pathways ({', '.join(s.id for s in specs)}).")
        print(f"Prefect UI: {ui}   (data: {rt.home}; Ctrl-C stops everything)", flush=True)
        if ready is not None:
            ready()
        serve_deployments(*deployments)
    finally:
        if server is not None:
            rt.api_url_file.unlink(missing_ok=True)
            server.stop()


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pathways", default="pathways", help="folder of pathway files (default: pathways/)")
    p.add_argument("--port", type=int, default=4200, help="port of the local Prefect server (default 4200)")


@command("up", "start Prefect (unless PREFECT_API_URL is set) and serve every pathway's flows", _up_args)
def _up(args: argparse.Namespace) -> int:
    from engine.runtime import runtime_from_env

    serve_forever(runtime_from_env(), args.pathways, args.port)
    return 0


# --------------------------------------------------------------------------------------------- enroll/event


def _enroll_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pathway", metavar="PATHWAY", help="pathway id (e.g. reentry)")
    p.add_argument("--person", required=True, metavar="ID", help="the program's opaque person id, e.g. P-000123")
    p.add_argument("--at", metavar="TIME", help="enrollment time, ISO 8601 (default: now)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=DURATION", help="set a pathway parameter")
    p.add_argument("--data", action="append", default=[], metavar="FACT=VALUE", help="initial episode facts")


@command("enroll", "start an episode for a person on a pathway", _enroll_args)
def _enroll(args: argparse.Namespace) -> int:
    from engine.runtime import runtime_from_env

    rt = runtime_from_env()
    rt.require_api()  # before Prefect is imported: it reads its settings once
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    from engine.compile import flow_for

    at = None
    if args.at:
        try:
            at = utc(datetime.fromisoformat(args.at))
        except ValueError as exc:
            raise CarepathError(f"--at: {args.at!r} is not an ISO 8601 time (e.g. 2026-12-01T09:00)") from exc
    changes = rt.service.enroll(
        args.pathway, args.person, at=at, params=parse_params(args.param), facts=parse_data(args.data)
    )
    episode = rt.service.episode(changes.episode_id)
    _run(flow_for(episode.pathway_id, episode.pathway_version, "enroll")(episode_id=changes.episode_id))
    print(f"{changes.episode_id}: enrolled on {episode.pathway_id} v{episode.pathway_version}, stage {changes.stage}")
    return 0


def _event_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", help="episode id (ep-...)")
    p.add_argument("event", metavar="EVENT", help="event name, e.g. detox.completed or handoff.accepted")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="event payload field")
    p.add_argument("--id", dest="event_id", metavar="EVENT_ID", help="idempotency id: the same id is applied once")


@command("event", "record what happened to a person (applied once per event id)", _event_args)
def _event(args: argparse.Namespace) -> int:
    from engine.runtime import runtime_from_env

    rt = runtime_from_env()
    state = run_event(rt, args.episode, args.event, parse_data(args.data), args.event_id)
    episode = rt.service.episode(args.episode)
    print(f"{args.episode}: {state.message or 'applied'}; stage {episode.stage} ({episode.status})")
    return 0


# ---------------------------------------------------------------------------------------------- reads


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", help="episode id (ep-...)")


@command("status", "show an episode: stage, open handoffs, deadlines, escalations, audit tail", _status_args)
def _status(args: argparse.Namespace) -> int:
    from engine.runtime import runtime_from_env
    from engine.views import episode_status, render_status

    rt = runtime_from_env()
    print(render_status(episode_status(rt.engine, args.episode), rt.clock.now()))
    return 0


def _episodes_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pathway", help="only this pathway id")
    p.add_argument("--stage", help="only episodes in this stage")
    p.add_argument("--overdue", action="store_true", help="only episodes with overdue work")


@command("episodes", "the caseload: one line per episode with its next deadline", _episodes_args)
def _episodes(args: argparse.Namespace) -> int:
    from engine.runtime import runtime_from_env
    from engine.views import caseload, render_table

    rt = runtime_from_env()
    rows = caseload(rt.engine, rt.clock.now(), pathway=args.pathway, stage=args.stage, overdue=args.overdue)
    print(render_table(rows) if rows else "no episodes")
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=4200, help="port of the local Prefect server (default 4200)")
    p.add_argument("--speed", type=float, default=900, help="pathway seconds per wall second (default 900)")
    p.add_argument("--exit-when-done", action="store_true", help="stop once the cohort's script has played")


@command(
    "demo", "run a synthetic cohort on both seed pathways with a compressed clock (see the Prefect UI)", _demo_args
)
def _demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo
    from engine.runtime import runtime_from_env

    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    # the demo's own data folder, for this process too: in-process flows read it from the environment
    os.environ["CAREPATH_HOME"] = str((Path(os.environ.get("CAREPATH_HOME") or ".carepath") / "demo").resolve())
    os.environ.pop("CAREPATH_DATABASE_URL", None)
    os.environ.pop("PREFECT_API_URL", None)
    return run_demo(runtime_from_env(), factor=args.speed, port=args.port, exit_when_done=args.exit_when_done)
