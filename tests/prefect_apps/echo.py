"""A served test flow that appends each run's parameters, its run id and the wall time to a JSON-lines file.

Serve it with ``python -m tests.prefect_apps.echo`` from the repository root, with ``PREFECT_API_URL`` and
``CAREPATH_ECHO_FILE`` set (see ``tests/prefect_harness.py``). It goes through
:func:`engine.orchestration.prefect_api.serve_deployments`, so the tests exercise Carepath's runner settings.
"""

from __future__ import annotations

import json
import os
import time

from prefect import flow
from prefect.runtime import flow_run

from engine.orchestration.prefect_api import serve_deployments

__all__ = ["DEPLOYMENT", "ECHO_FILE_ENV", "echo", "main"]

ECHO_FILE_ENV = "CAREPATH_ECHO_FILE"
FLOW_NAME = "carepath-test-echo"
DEPLOYMENT = f"{FLOW_NAME}/echo"


@flow(name=FLOW_NAME)
async def echo(episode_id: str, rung: int = 0) -> None:
    """Record that this run happened (async: no heartbeat thread to join at exit)."""
    record = {"episode_id": episode_id, "rung": rung, "run_id": flow_run.get_id(), "at": time.time()}
    with open(os.environ[ECHO_FILE_ENV], "a") as out:
        out.write(json.dumps(record) + "\n")


def main() -> None:
    serve_deployments(
        echo.to_deployment(
            name="echo", tags=["carepath-test"], version="test", description="Appends its parameters to a file."
        )
    )


if __name__ == "__main__":
    main()
