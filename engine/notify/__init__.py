"""Escalations leave Carepath here: the roster of who fills a role (:mod:`.roster`), delivery through apprise
with retries and an outcome per contact (:mod:`.delivery`), and apprise itself, kept quiet (:mod:`.apprise_io`).

May import :mod:`engine.language` (the roster is checked like a pathway) and :mod:`engine.errors`; no database,
no Prefect.
"""
