"""The handoff safety core: the rest of a handoff's state, Part 2 consents and disclosures, medication lists and
reconciliation discrepancies, escalation deliveries.

Only additions: new tables, and nullable (or defaulted) columns on ``handoff``, so a 0001 database keeps its rows
and needs no table rebuild. Downgrade drops them again (SQLite 3.35+ drops columns in place).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _handoff_columns() -> tuple[sa.Column[Any], ...]:
    return (
        sa.Column("status_reason", sa.String(), nullable=True),
        sa.Column("consent_id", sa.String(), nullable=True),
        sa.Column("held_from", sa.String(), nullable=True),
        sa.Column("appointment_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("steps_met", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("re_engage_within_s", sa.Float(), nullable=True),
        sa.Column("fallback", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )


def _episode_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["episode_id"],
        ["episode.id"],
        name=op.f(f"fk_{table}_episode_id_episode"),
        initially="DEFERRED",
        deferrable=True,
    )


def upgrade() -> None:
    for column in _handoff_columns():
        op.add_column("handoff", column)

    op.create_table(
        "consent",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("person_ref", sa.String(), nullable=False),
        sa.Column("discloser", sa.String(), nullable=False),
        sa.Column("information", sa.String(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("recipient_classes", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("expires", sa.String(), nullable=False),
        sa.Column("signed_on", sa.String(), nullable=False),
        sa.Column("signed_by", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_in_writing", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    op.create_index("ix_consent_person", "consent", ["person_ref"], unique=False)

    op.create_table(
        "disclosure",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("person_ref", sa.String(), nullable=False),
        sa.Column("episode_id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("information", sa.String(), nullable=False),
        sa.Column("consent_id", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notice", sa.String(), nullable=False),
        sa.Column("what", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent.id"],
            name=op.f("fk_disclosure_consent_id_consent"),
            initially="DEFERRED",
            deferrable=True,
        ),
        _episode_fk("disclosure"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure")),
    )
    op.create_index("ix_disclosure_episode", "disclosure", ["episode_id", "at"], unique=False)
    op.create_index("ix_disclosure_person", "disclosure", ["person_ref", "at"], unique=False)

    op.create_table(
        "medication_list",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.String(), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("medications", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(), nullable=True),
        _episode_fk("medication_list"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_list")),
        sa.UniqueConstraint("episode_id", "visit", "side", name="uq_medication_list_episode_visit_side"),
    )

    op.create_table(
        "discrepancy",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("episode_id", sa.String(), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("medication", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("medication_class", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("marked_by", sa.String(), nullable=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=True),
        _episode_fk("discrepancy"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancy")),
    )
    op.create_index("ix_discrepancy_episode", "discrepancy", ["episode_id", "visit"], unique=False)

    op.create_table(
        "delivery",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("rung_id", sa.String(), nullable=False),
        sa.Column("episode_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("contact_label", sa.String(), nullable=True),
        sa.Column("redacted_url", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _episode_fk("delivery"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_delivery")),
    )
    op.create_index("ix_delivery_episode", "delivery", ["episode_id"], unique=False)
    op.create_index("ix_delivery_rung", "delivery", ["rung_id"], unique=False)
    op.create_index("ix_delivery_status", "delivery", ["status", "updated_at"], unique=False)


def downgrade() -> None:
    op.drop_table("delivery")  # a table's indexes go with it
    op.drop_table("discrepancy")
    op.drop_table("medication_list")
    op.drop_table("disclosure")
    op.drop_table("consent")
    for column in reversed(_handoff_columns()):
        op.drop_column("handoff", column.name)
