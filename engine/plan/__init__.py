"""The compiled plan: what a validated pathway schedules and when, and its renderings (text, Mermaid).

Pure: imports :mod:`engine.language` and :mod:`engine.errors` only; no Prefect, no database, no clock.
"""
