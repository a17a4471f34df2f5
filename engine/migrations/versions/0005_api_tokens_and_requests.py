"""Bearer tokens for the HTTP API and the idempotency keys of its requests.

- ``api_token``: one per token issued (``carepath token create``); only the sha256 of its secret is kept, and a
  revoked token stays as a row (the audit trail names its label). A label is unique among unrevoked tokens (a
  partial unique index, which SQLite and PostgreSQL both have), so two concurrent creations cannot share one;
- ``api_request``: one per (token, ``Idempotency-Key``): the request's digest, and once it finished, the response
  to replay (``status_code`` is null while the request runs).

Only additions, so a 0004 database keeps its rows and needs no table rebuild.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("program", sa.String(), nullable=True),
        sa.Column("secret_sha256", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
    )
    op.create_index(
        "uq_api_token_active_label",
        "api_token",
        ["label"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_table(
        "api_request",
        sa.Column("token_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_token.id"],
            name=op.f("fk_api_request_token_id_api_token"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("token_id", "key", name=op.f("pk_api_request")),
    )
    op.create_index("ix_api_request_created", "api_request", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_api_request_created", table_name="api_request")
    op.drop_table("api_request")
    op.drop_index("uq_api_token_active_label", table_name="api_token")
    op.drop_table("api_token")
