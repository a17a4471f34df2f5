"""Pure rules of the handoff safety core: handoffs, consent, medication reconciliation (no I/O, no Prefect).

- :mod:`engine.episode.domain.handoff`: the closed-loop handoff lifecycle (FHIR Task.status + BSeR business status);
- :mod:`engine.episode.domain.authorization`: the insurance authorization an admission waits on;
- :mod:`engine.episode.domain.effects`: what their moves ask of the pathway machinery, returned as data;
- :mod:`engine.episode.domain.consent`: 42 CFR Part 2 consent, disclosure records and the accounting of disclosures;
- :mod:`engine.episode.domain.reconcile`: medication reconciliation with MOUD omission as the critical discrepancy.

Every function takes ``now`` from its caller; none reads a clock.
"""
