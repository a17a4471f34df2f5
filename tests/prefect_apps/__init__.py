"""Tiny Prefect apps that the Prefect tests serve in a subprocess (``python -m tests.prefect_apps.<name>``)."""
