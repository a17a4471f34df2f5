"""Pure episode rules over a compiled plan: stages, events and rungs (:mod:`.rules`), handoffs and consent
(:mod:`.referrals`), insurance authorization (:mod:`.authorizations`), the state they change (:mod:`.state`) and the
standards' own rules they apply (:mod:`.domain`: handoff lifecycle, insurance authorization, Part 2 consent,
medication reconciliation).

Pure: imports :mod:`engine.plan`, :mod:`engine.language` and :mod:`engine.errors` only; takes ``now`` from its
caller; no Prefect, no database, no clock.
"""
