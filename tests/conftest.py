"""Shared fixtures: the real Prefect server harness is a plugin, loaded once for the whole session."""

pytest_plugins = ["prefect_harness"]
