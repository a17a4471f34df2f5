"""An index on the run each rung is linked to.

Deadline runs became batches (one Prefect run per pathway and wall minute, carrying every rung due in it): a run
finds its rungs by its own id, and the follow-up and the reconciler ask whether any pending rung still needs a run
before cancelling it. Both look rungs up by ``flow_run_id`` alone, which the older (status, flow_run_id, due_at)
index does not serve.

Only an addition, so a 0005 database keeps its rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.create_index("ix_rung_flow_run", ["flow_run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.drop_index("ix_rung_flow_run")
