"""The compiled plan: what a validated pathway schedules and when (:mod:`.model`), the compiler that builds it
(:mod:`.build`), and its renderings (:mod:`.text`, :mod:`.mermaid`).

Pure: imports :mod:`engine.language` and :mod:`engine.errors` only; no Prefect, no database, no clock.
"""
