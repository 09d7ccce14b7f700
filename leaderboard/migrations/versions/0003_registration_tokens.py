"""registration tokens (registration = token)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("registration_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registration_token_token_hash"), ["token_hash"],
                              unique=True)


def downgrade() -> None:
    with op.batch_alter_table("registration_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registration_token_token_hash"))
    op.drop_table("registration_token")
