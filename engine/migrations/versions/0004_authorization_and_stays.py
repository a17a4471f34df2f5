"""Insurance authorizations an admission waits on, and stays shorter than expected.

- ``authorization``: one per move that needs it (requested before or at the move), its decision and deadline;
- ``stage_visit.short_of_min_s``: the expected minimum stay a visit fell short of, in seconds (null: not flagged).

Only additions, so a 0003 database keeps its rows and needs no table rebuild.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stage_visit", sa.Column("short_of_min_s", sa.Float(), nullable=True))
    op.create_table(
        "authorization",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("episode_id", sa.String(), nullable=False),
        sa.Column("handoff_id", sa.String(), nullable=True),
        sa.Column("transition_index", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("program", sa.String(), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("work_item_id", sa.String(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episode.id"],
            name=op.f("fk_authorization_episode_id_episode"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoff.id"],
            name=op.f("fk_authorization_handoff_id_handoff"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorization")),
    )
    op.create_index("ix_authorization_episode", "authorization", ["episode_id", "closed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_authorization_episode", table_name="authorization")
    op.drop_table("authorization")
    op.drop_column("stage_visit", "short_of_min_s")
