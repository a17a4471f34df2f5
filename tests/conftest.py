"""Shared fixtures: the real Prefect server harness is a plugin, loaded once for the whole session."""

import ast
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

# schemathesis's pytest plugin imports its report writers when the session finishes, and pytest rewrites a plugin's
# modules with ast.parse as they load: with a test's leftover threads parsing meanwhile (below), the run ended in a
# SystemError after every test had passed. Imported now, on the main thread, before any test starts a thread.
import schemathesis.reporting.html.writer
import schemathesis.reporting.junitxml  # noqa: F401

# Prefect reads its settings on first import; keep its per-run INFO chatter out of test reports
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# every process of the session (serving, CLI, flow runs) heart-beats alike: a run whose process a crash test killed
# is crashed 90 s after its last heartbeat (engine.orchestration.prefect_api.ensure_zombie_automation)
os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")

pytest_plugins = ["hang_watchdog", "prefect_harness", "store_fixtures", "api_fixtures"]


# CPython 3.11's parser keeps its AST recursion bookkeeping in state every thread shares: two threads parsing at
# once can fail with "SystemError: AST constructor recursion depth mismatch". Hypothesis parses lambdas' sources,
# the architecture tests parse every module, and the threads a test leaves running (a served API, Prefect's
# services, pydantic) parse too: one CI run in three failed so in the fuzz tests, and test_builtins once in a
# local run of several files. Every ``ast.parse`` in the session takes one lock.
_PARSE_LOCK = threading.RLock()  # re-entrant: a collection during a parse may run a finalizer that parses


@pytest.fixture(autouse=True)
def one_parse_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ast.parse`` serialised across threads for every test (CPython 3.11's race, above)."""
    parse: Callable[..., Any] = ast.parse

    def serialised(*args: Any, **kwargs: Any) -> Any:
        with _PARSE_LOCK:
            return parse(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", serialised)
