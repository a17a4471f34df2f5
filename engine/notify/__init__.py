"""Escalations leave Carepath here: the roster of who fills a role (:mod:`.roster`) and delivery through apprise
with retries and an outcome per contact (:mod:`.delivery`).

May import :mod:`engine.language` (the roster is checked like a pathway) and :mod:`engine.errors`; no database,
no Prefect.
"""
