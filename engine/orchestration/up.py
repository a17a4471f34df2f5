"""``carepath up``: register the pathways, start a local Prefect server unless one is configured, and serve every
pathway's deployments from this process until it is stopped.

The local server runs in its own process group and is stopped on the way out; its address is recorded in the data
folder for the other commands. Deadline runs are started by Prefect as child processes of this one; they find the
server through Prefect's settings (passed down by Prefect) and the data folder through the same environment.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.app import App, Settings
from engine.app.pathways import register_pathways
from engine.clock import CompressedClock
from engine.language.model import PathwaySpec
from engine.orchestration.wiring import production_app

__all__ = ["check_roster", "serve_forever"]


def check_roster(app: App) -> str:
    """Load the roster if there is one (a bad one stops start-up with its diagnostics); a one-line summary."""
    roster = app.notifier.roster() if hasattr(app.notifier, "roster") else None
    if roster is None:
        return "no roster: escalations are raised and recorded as reaching nobody; see `carepath status`"
    return f"roster {roster.file}: {len(roster.roles())} roles"


def serve_forever(
    settings: Settings,
    *,
    port: int | None,
    speed: float | None = None,
    ready: Callable[[list[PathwaySpec], str], None] | None = None,
) -> None:
    """Register, start Prefect if needed, and serve until interrupted; ``ready(specs, ui_url)`` once serving."""
    from engine.orchestration.server import start_local_server

    app = production_app(settings)
    specs = register_pathways(app, settings.pathways)
    print(check_roster(app))
    if speed is not None:
        app.set_clock(CompressedClock.starting_now(speed))
    server = None
    if not settings.prefect_api_url:
        server = start_local_server(settings.home / "prefect", port=port, log_path=settings.home / "prefect-server.log")
        settings.api_url_file.write_text(server.api_url)
        settings = settings.with_changes(prefect_api_url=server.api_url)
    try:
        _serve(settings, specs, ready)
    finally:
        if server is not None:
            settings.api_url_file.unlink(missing_ok=True)
            server.stop()
        app.close()


def _serve(
    settings: Settings, specs: list[PathwaySpec], ready: Callable[[list[PathwaySpec], str], None] | None
) -> None:
    from engine.orchestration.adapters import prefect_api

    with prefect_api(settings) as url:
        # Prefect is imported only now that its API address is set
        from engine.orchestration.deployments import compile_deployments, sweep_deployment
        from engine.orchestration.prefect_api import serve_deployments

        deployments = [d for spec in specs for d in compile_deployments(spec)] + [sweep_deployment()]
        if ready is not None:
            ready(specs, url.removesuffix("/api"))
        serve_deployments(*deployments)
