"""Artifacts operators read in the Prefect UI, published through the client (opaque ids and codes only)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from engine.errors import OrchestrationError
from engine.orchestration.prefect_api.calls import (
    _client,
)

if TYPE_CHECKING:
    pass

__all__ = ["publish_markdown_artifact", "publish_table_artifact"]


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
