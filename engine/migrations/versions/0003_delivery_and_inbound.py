"""Every escalation reaches a person; payloads stay in the store; event ids are unique per episode.

- ``inbound_event``: an event with its payload, stored before it is applied, so Prefect sees only its id;
- ``escalation.severity``, ``delivery_claimed_at`` and ``delivery_done_at`` (the sweep delivers what nobody
  finished delivering);
- ``work_item.severity`` and ``note`` (free text such as a denial's reason stays here, never in Prefect);
- ``processed_event``: primary key (episode_id, event_id) instead of event_id alone, plus the event's ``digest``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _severity() -> sa.Column[str]:
    return sa.Column("severity", sa.String(), server_default="normal", nullable=False)


def upgrade() -> None:
    op.add_column("escalation", _severity())
    op.add_column("escalation", sa.Column("delivery_claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("escalation", sa.Column("delivery_done_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_escalation_delivery", "escalation", ["delivery_done_at", "delivery_claimed_at"], unique=False)
    # escalations raised before this revision were handled by the old delivery path: not re-sent on upgrade
    op.execute("UPDATE escalation SET delivery_done_at = raised_at")
    op.add_column("work_item", _severity())
    op.add_column("work_item", sa.Column("note", sa.String(), nullable=True))
    with op.batch_alter_table("processed_event", recreate="always") as batch:
        batch.add_column(sa.Column("digest", sa.String(), nullable=True))
        batch.drop_constraint("pk_processed_event", type_="primary")
        batch.create_primary_key("pk_processed_event", ["episode_id", "event_id"])
    op.create_table(
        "inbound_event",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("episode_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episode.id"],
            name=op.f("fk_inbound_event_episode_id_episode"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_event")),
    )
    op.create_index("ix_inbound_event_episode", "inbound_event", ["episode_id", "received_at"], unique=False)


def downgrade() -> None:
    op.drop_table("inbound_event")
    with op.batch_alter_table("processed_event", recreate="always") as batch:
        batch.drop_constraint("pk_processed_event", type_="primary")
        batch.create_primary_key("pk_processed_event", ["event_id"])
        batch.drop_column("digest")
    op.drop_column("work_item", "note")
    op.drop_column("work_item", "severity")
    op.drop_index("ix_escalation_delivery", table_name="escalation")
    op.drop_column("escalation", "delivery_done_at")
    op.drop_column("escalation", "delivery_claimed_at")
    op.drop_column("escalation", "severity")
