"""``python -m flows.serve``: serve every pathway's deployments against ``PREFECT_API_URL`` (a worker process).

The same as ``carepath up`` with ``PREFECT_API_URL`` set; pathways come from ``CAREPATH_PATHWAYS`` (default
``pathways/``). Used by operators who run the Prefect server themselves, and by the tests' crash scenarios.
"""

from __future__ import annotations

import os
import sys

from engine.cli_episodes import serve_forever
from engine.errors import CarepathError
from engine.runtime import runtime_from_env


def main() -> int:
    if not os.environ.get("PREFECT_API_URL"):
        print("error: set PREFECT_API_URL (or use `carepath up`, which starts a server)", file=sys.stderr)
        return 2
    try:
        serve_forever(runtime_from_env(), os.environ.get("CAREPATH_PATHWAYS", "pathways"), None)
    except CarepathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
