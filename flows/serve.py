"""``python -m flows.serve``: serve every pathway's deployments against ``PREFECT_API_URL`` (a worker process).

The same as ``carepath up`` with ``PREFECT_API_URL`` set; pathways come from ``CAREPATH_PATHWAYS`` (default
``pathways/``). Used by operators who run the Prefect server themselves, and by the tests' crash scenarios.
"""

from __future__ import annotations

import sys

from engine.app import Settings
from engine.process import answer_interrupts, run_entry_point


def main() -> int:
    answer_interrupts()  # `up` stops its serving processes by SIGINT, whatever disposition it inherited
    settings = Settings.from_env()
    if not settings.prefect_api_url:
        print("error: set PREFECT_API_URL (or use `carepath up`, which starts a server)", file=sys.stderr)
        return 2

    def serve() -> int:
        from engine.orchestration.up import serve_forever

        serve_forever(settings, port=None)
        return 0

    return run_entry_point(serve)


if __name__ == "__main__":
    sys.exit(main())
