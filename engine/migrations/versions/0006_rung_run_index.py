"""An index on the run each rung is linked to, and the runs being cancelled (``released_run``).

Deadline runs became batches (one Prefect run per pathway and wall minute, carrying every rung due in it): a run
finds its rungs by its own id, and the follow-up and the reconciler ask whether any pending rung still needs a run
before cancelling it. Both look rungs up by ``flow_run_id`` alone, which the older (status, flow_run_id, due_at)
index does not serve.

``released_run`` holds the runs Carepath is cancelling because no pending rung needs them: a rung scheduled into
one of them at that moment is refused (and scheduled again) instead of being left linked to a cancelled run.

Only additions, so a 0005 database keeps its rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.create_index("ix_rung_flow_run", ["flow_run_id"], unique=False)
    op.create_table(
        "released_run",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_released_run")),
    )
    with op.batch_alter_table("released_run", schema=None) as batch_op:
        batch_op.create_index("ix_released_run_at", ["released_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("released_run", schema=None) as batch_op:
        batch_op.drop_index("ix_released_run_at")
    op.drop_table("released_run")
    with op.batch_alter_table("rung", schema=None) as batch_op:
        batch_op.drop_index("ix_rung_flow_run")
