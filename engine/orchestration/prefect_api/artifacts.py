"""Artifacts operators read in the Prefect UI, published through the client (opaque ids and codes only)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import httpx

from engine.errors import OrchestrationError
from engine.orchestration.prefect_api.calls import _client, gather_limited, shared_client

__all__ = ["publish_artifacts", "publish_markdown_artifact", "publish_table_artifact"]


_ARTIFACT_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


async def publish_markdown_artifact(key: str, markdown: str, description: str | None = None) -> UUID:
    """Publish a new version of the Markdown artifact ``key`` (lowercase letters, digits, dashes).

    Inside a flow or task run the artifact is also linked to that run.
    """
    return await _publish("markdown", key, markdown, description)


async def publish_table_artifact(
    key: str | None, rows: Sequence[Mapping[str, Any]], description: str | None = None
) -> UUID:
    """Publish a new version of the table artifact ``key``: one row per mapping, columns from the keys. Without a
    key the table belongs to the current run only (its Artifacts tab), with no history across runs."""
    return await _publish("table", key, json.dumps([dict(row) for row in rows], default=str), description)


async def publish_artifacts(
    versions: Sequence[tuple[str, str | Sequence[Mapping[str, Any]], str | None]], limit: int
) -> list[str]:
    """Publish each ``(key, Markdown text or table rows, description)`` over one client, at most ``limit`` at a
    time, every one whatever another's fate (a refused artifact does not stop the others), unless the server does
    not answer: then the rest are not tried; returns a line for each that was not published.

    Why one client: opening one costs a CSRF-token round trip and a connection, more than the artifact itself; a
    batch of follow-ups publishing an artifact per episode, each over its own client, fell behind under load."""

    down: list[str] = []  # the server did not answer one: the rest are not tried (each would wait as long)

    async def one(key: str, content: str | Sequence[Mapping[str, Any]], description: str | None) -> str | None:
        if down:
            return f"{key}: not tried ({down[0]})"
        try:
            if isinstance(content, str):
                await publish_markdown_artifact(key, content, description)
            else:
                await publish_table_artifact(key, content, description)
        except OrchestrationError as exc:
            if isinstance(exc.__cause__, httpx.TransportError | TimeoutError):
                down.append(str(exc))
            return str(exc)
        return None

    async with shared_client():
        outcomes = await gather_limited([one(*version) for version in versions], limit)
    return [outcome for outcome in outcomes if outcome]


async def _publish(kind: str, key: str | None, data: str, description: str | None) -> UUID:
    # Through the client rather than prefect.artifacts: that warns (FutureWarning) outside a flow or task run,
    # and a CLI command publishes outside one.
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.utilities.context import get_task_and_flow_run_ids

    if key is not None and not _ARTIFACT_KEY.match(key):
        raise OrchestrationError(f"artifact key {key!r} must be lowercase letters, digits and single dashes")
    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    request = ArtifactCreate(
        type=kind, key=key, data=data, description=description, task_run_id=task_run_id, flow_run_id=flow_run_id
    )
    async with _client(f"cannot publish artifact {key or kind!r}") as client:
        return (await client.create_artifact(artifact=request)).id
