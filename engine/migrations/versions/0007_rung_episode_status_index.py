"""Rungs found by episode and status through one index: (episode_id, status, due_at) instead of (episode_id).

Loading an episode reads its pending rungs, soonest first, and a follow-up its due ones. With an index on the
episode alone and one on (status, due_at), SQLite's planner took the status index (``status = ?`` looks more
selective to it than it is): every lookup read all pending rungs of the store, about 5 ms at 1,000 episodes
(7,000 pending rungs) and growing with the caseload, many times per fired rung (bench: the serving process's
busiest query). The composite index serves both lookups and anything by episode alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.create_index("ix_rung_episode_status", ["episode_id", "status", "due_at"], unique=False)
        batch_op.drop_index("ix_rung_episode")


def downgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.create_index("ix_rung_episode", ["episode_id"], unique=False)
        batch_op.drop_index("ix_rung_episode_status")
