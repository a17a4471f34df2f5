"""A work item's pending rungs through one index: (work_item_id, status, index) instead of (work_item_id).

Scheduling asks for each item's lowest pending rung without a run ("no lower pending rung in the same item", a
NOT EXISTS per candidate rung). With an index on the item alone and one on (status, due_at), PostgreSQL with
statistics older than the table's growth (a caseload enrolled within minutes) combined the two as a bitmap, reading
every pending rung of the store for each candidate: the sweep's look for unscheduled rungs ran for more than ten
minutes at 10,000 episodes (107,000 pending rungs), and the safety net stood still meanwhile. The composite index
answers each look with a few index entries, whatever the statistics; lookups by item alone use its prefix.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.create_index("ix_rung_work_item_status", ["work_item_id", "status", "index"], unique=False)
        batch_op.drop_index("ix_rung_work_item")


def downgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.create_index("ix_rung_work_item", ["work_item_id"], unique=False)
        batch_op.drop_index("ix_rung_work_item_status")
