"""Prefect, and only here: the ports' Prefect implementations (:mod:`.adapters`), deployments compiled from a
pathway (:mod:`.deployments`), the few Prefect calls Carepath makes (:mod:`.prefect_api`), the local server
(:mod:`.server`), ``carepath up`` (:mod:`.up`) and the names operators read (:mod:`.names`).

May import :mod:`engine.app` and below; nothing below :mod:`engine.app` imports this package.
"""
