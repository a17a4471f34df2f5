"""The revision of each episode its Prefect artifacts show (``episode.published_revision``).

An episode's artifacts are published by the follow-up after each change. A follow-up dropped while Prefect was down
(the API answers from the store and leaves its follow-up to the sweep) or lost in a crash left the episode's
artifact showing an older state until its next change, days later on a quiet pathway; the sweep could not tell
which episodes were behind. The column says so, and a partial index on (updated_at) over the rows that are behind
finds them without reading the caseload. Existing episodes count as published: their artifacts were published by
the follow-ups that ran before this column existed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNPUBLISHED = "published_revision < revision"


def upgrade() -> None:
    op.add_column("episode", sa.Column("published_revision", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE episode SET published_revision = revision")
    op.create_index(
        "ix_episode_unpublished",
        "episode",
        ["updated_at"],
        unique=False,
        sqlite_where=sa.text(UNPUBLISHED),
        postgresql_where=sa.text(UNPUBLISHED),
    )


def downgrade() -> None:
    op.drop_index("ix_episode_unpublished", table_name="episode")
    # not in a batch: on SQLite that copies the table, dropping the original under the rows that refer to it
    op.drop_column("episode", "published_revision")
