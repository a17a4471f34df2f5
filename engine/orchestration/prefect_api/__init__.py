"""The few Prefect calls the orchestration layer makes: durable timers, their cancellation, artifacts, serving.

Why these and not Prefect's API directly: every call here takes opaque ids only (episode, pathway, stage ids;
never a name or a date of birth), turns every Prefect or HTTP failure into a one-line
:class:`~engine.errors.OrchestrationError`, and encodes what was measured about Prefect 3.8.8 (see the README
section "Running on Prefect"):

- a deadline is a deployment run created in state ``Scheduled`` at its due time, with an idempotency key; the
  server keeps it, so it survives the restart of every process;
- the server never lets a run start early (it answers ``WAIT`` until the scheduled time), so the serving
  process may prefetch generously to hide its ~2-10 s process start;
- a run a serving process prefetched (state ``Pending``) is orphaned for ever if that process dies before the
  run starts: :func:`requeue_orphaned_runs` puts such runs back, and :func:`serve_deployments` calls it;
  :func:`list_runs`, :func:`requeue_flow_runs` and :func:`end_flow_runs` let the sweep's reconciler do the same
  at any time, for runs stuck past a bound.

Split by concern: :mod:`.calls` (errors, clients, sync callers), :mod:`.runs` (timers and their repair),
:mod:`.artifacts`, :mod:`.claims` (due runs run in this process), :mod:`.operators` (named final states, tags,
the operators' automations) and :mod:`.serving`. All functions are coroutines; :func:`run_sync` runs one from
synchronous code (a CLI command, a sync flow).
"""

from __future__ import annotations

from engine.orchestration.prefect_api.artifacts import *  # noqa: F403
from engine.orchestration.prefect_api.artifacts import __all__ as _artifacts
from engine.orchestration.prefect_api.calls import *  # noqa: F403
from engine.orchestration.prefect_api.calls import __all__ as _calls
from engine.orchestration.prefect_api.claims import *  # noqa: F403
from engine.orchestration.prefect_api.claims import __all__ as _claims
from engine.orchestration.prefect_api.operators import *  # noqa: F403
from engine.orchestration.prefect_api.operators import __all__ as _operators
from engine.orchestration.prefect_api.runs import *  # noqa: F403
from engine.orchestration.prefect_api.runs import __all__ as _runs
from engine.orchestration.prefect_api.serving import *  # noqa: F403
from engine.orchestration.prefect_api.serving import __all__ as _serving

__all__ = [name for name in (*_artifacts, *_calls, *_claims, *_operators, *_runs, *_serving) if name != "T"]
