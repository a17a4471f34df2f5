"""Pure rules of the handoff safety core: handoffs, consent, medication reconciliation (no I/O, no Prefect).

- :mod:`engine.episode.domain.handoff`: the closed-loop handoff lifecycle (FHIR Task.status + BSeR business status) and
  the insurance authorization precondition;
- :mod:`engine.episode.domain.consent`: 42 CFR Part 2 consent, disclosure records and the accounting of disclosures;
- :mod:`engine.episode.domain.reconcile`: medication reconciliation with MOUD omission as the critical discrepancy.

Every function takes ``now`` from its caller; none reads a clock.
"""
