"""Coordinator and operator commands: ``up``, ``enroll``, ``event``, ``status``, ``episodes``, ``demo``.

Front-ends only: each parses its arguments and calls a use case of :mod:`engine.app`. A request that needs
Prefect checks that it answers before anything is written, so a refused command changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.pathways import parse_params
from engine.cli.registry import command, whole_number
from engine.errors import CarepathError, quote
from engine.language.builtins import HANDOFF_STEPS

__all__ = ["cli_app", "parse_data", "report_event"]


def cli_app() -> Any:
    """The App of a CLI command: settings read once from this process's environment, real ports. Its requests run
    as in-process flow runs; Prefect's flows are imported only by a command that dispatches one."""
    from engine.app import Settings
    from engine.orchestration.wiring import production_app

    return production_app(Settings.from_env(), _LazyFlows())


class _LazyFlows:
    """The flows, imported (with Prefect) only by a command that runs one."""

    def for_pathway(self, pathway_id: str, version: int, kind: str) -> Any:
        from engine.orchestration.flows import FLOWS

        return FLOWS.for_pathway(pathway_id, version, kind)

    def sweep(self) -> Any:
        from engine.orchestration.flows import FLOWS

        return FLOWS.sweep()

    def requests(self) -> Any:
        from engine.orchestration.flows import FLOWS

        return FLOWS.requests()


def parse_data(pairs: list[str]) -> dict[str, str]:
    """``["insurance=medicaid", "dose=16 mg"]`` -> ``{"insurance": "medicaid", "dose": "16 mg"}``: text as typed;
    the application layer reads each value as the type the pathway declares for it (``"14"`` for a number)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CarepathError(f"--data: {quote(pair)} is not KEY=VALUE")
        if key.strip() in out:
            raise CarepathError(f"--data: {quote(key.strip())} is given twice")
        out[key.strip()] = raw
    return out


def report_event(result: Any) -> int:
    """One line: ``ep-1: applied; stage residential (active)``."""
    what = "duplicate event: nothing changed" if result.status == "duplicate" else "applied"
    print(f"{result.episode_id}: {what}; stage {result.stage} ({result.episode_status})")
    return 0


# ------------------------------------------------------------------------------------------------------ up


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pathways", help="folder of pathway files (default: pathways/, or CAREPATH_PATHWAYS)")
    p.add_argument("--port", type=int, default=4200, help="port of the local Prefect server (default 4200)")
    p.add_argument(
        "--speed",
        type=float,
        metavar="N",
        help="run pathway time N times faster than the wall (stored in the data folder, e.g. 900: one pathway "
        "hour every 4 s) to rehearse a pathway end to end",
    )
    p.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="serving processes in all, this one included (default 1; at most 32): the others share the runs "
        "(see the README's 'Running at scale')",
    )
    api_args(p, off_switch=True)


def api_args(p: argparse.ArgumentParser, *, off_switch: bool = False) -> None:
    """``--api-host`` and ``--api-port`` (and ``--no-api`` for ``up``)."""
    p.add_argument("--api-host", default="127.0.0.1", help="address the HTTP API listens on (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, default=8400, help="port of the HTTP API (default 8400)")
    if off_switch:
        p.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")


@command("up", "start Prefect (unless PREFECT_API_URL is set) and serve every pathway's flows", _up_args)
def _up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.app import Settings
    from engine.orchestration.up import serve_forever
    from engine.orchestration.workers import MAX_WORKERS

    workers = whole_number("--workers", args.workers, 1, MAX_WORKERS)
    settings = Settings.from_env()
    if args.pathways:
        settings = settings.with_changes(pathways=Path(args.pathways))
    if args.speed is not None and not 0 < args.speed <= 100_000:
        raise CarepathError(f"--speed: {args.speed:g} is not between 0 and 100000")

    api = None if args.no_api else (args.api_host, args.api_port)

    def ready(specs: list[Any], ui: str) -> None:
        processes = f" from {workers} processes" if workers > 1 else ""
        print(f"Carepath is serving {len(specs)} pathways ({', '.join(s.id for s in specs)}){processes}.")
        clock = f"; clock {args.speed:g}x" if args.speed else ""
        if api is not None:
            print(f"HTTP API: http://{args.api_host}:{args.api_port}/api/v1  (FHIR: /fhir/R4, docs: /docs)")
        print(f"Prefect UI: {ui}   (data: {settings.home}{clock}; Ctrl-C stops everything)", flush=True)

    serve_forever(settings, port=args.port, speed=args.speed, ready=ready, api=api, workers=workers)
    return 0


@command("api", "serve only the HTTP API (/api/v1, /fhir/R4) on this store; `carepath up` must be running", api_args)
def _api(args: argparse.Namespace) -> int:
    from engine.api.serving import ApiServer
    from engine.app import Settings
    from engine.orchestration.flows import dispatching_app

    server = ApiServer(dispatching_app(Settings.from_env(), deferred=True), args.api_host, args.api_port)
    print(f"HTTP API: {server.url}/api/v1  (FHIR: /fhir/R4, docs: /docs; Ctrl-C stops it)", flush=True)
    server.run()
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
    from engine.app import enroll

    params, facts = parse_params(args.param), parse_data(args.data)
    app = cli_app()
    episode_id = enroll(app, args.pathway, args.person, at=args.at, params=params, facts=facts)
    episode = app.service.episode(episode_id)
    print(f"{episode_id}: enrolled on {episode.pathway_id} v{episode.pathway_version}, stage {episode.stage}")
    return 0


def _event_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", help="episode id (ep-...)")
    first_step = HANDOFF_STEPS[0].event
    p.add_argument("event", metavar="EVENT", help=f"event name, e.g. detox.completed or {first_step}")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="event payload field")
    p.add_argument("--id", dest="event_id", metavar="EVENT_ID", help="idempotency id: the same id is applied once")


@command("event", "record what happened to a person (applied once per event id)", _event_args)
def _event(args: argparse.Namespace) -> int:
    from engine.app import record_event

    return report_event(
        record_event(cli_app(), args.episode, args.event, parse_data(args.data), event_id=args.event_id)
    )


# ---------------------------------------------------------------------------------------------- reads


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", help="episode id (ep-...)")


@command("status", "show an episode: stage, open handoffs, deadlines, escalations, audit tail", _status_args)
def _status(args: argparse.Namespace) -> int:
    from engine.app.reads import status
    from engine.cli.render import render_status

    app = cli_app()
    print(render_status(status(app, args.episode), app.clock.now()))
    return 0


def _episodes_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pathway", help="only this pathway id")
    p.add_argument("--stage", help="only episodes in this stage")
    p.add_argument("--overdue", action="store_true", help="only episodes with overdue work")


@command("episodes", "the caseload: one line per episode with its next deadline", _episodes_args)
def _episodes(args: argparse.Namespace) -> int:
    from engine.app.reads import episodes
    from engine.cli.render import render_table

    rows = episodes(cli_app(), pathway=args.pathway, stage=args.stage, overdue=args.overdue)
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
    from engine.app import Settings
    from engine.cli.demo import run_demo

    base = Settings.from_env()
    # the demo's own data folder and its own server, whatever this shell points at
    home = (base.home / "demo").resolve()
    env = {k: v for k, v in base.env.items() if k not in ("CAREPATH_DATABASE_URL", "PREFECT_API_URL")}
    settings = Settings.from_env({**env, "CAREPATH_HOME": str(home)})
    return run_demo(settings, factor=args.speed, port=args.port, exit_when_done=args.exit_when_done)
