"""Shared fixtures: the real Prefect server harness is a plugin, loaded once for the whole session."""

import os

# Prefect reads its settings on first import; keep its per-run INFO chatter out of test reports
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# every process of the session (serving, CLI, flow runs) heart-beats alike: a run whose process a crash test killed
# is crashed 90 s after its last heartbeat (engine.orchestration.prefect_api.ensure_zombie_automation)
os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")

pytest_plugins = ["hang_watchdog", "prefect_harness", "store_fixtures", "api_fixtures"]
