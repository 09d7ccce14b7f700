"""participant name skeletons (look-alike names), key expiry and revocation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leaderboard.names import skeleton

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_skeleton", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("key_expires_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True),
                                      nullable=True))
    participant = sa.table("participant", sa.column("id", sa.Integer),
                           sa.column("name", sa.String), sa.column("name_skeleton", sa.String))
    connection = op.get_bind()
    taken: dict[str, int] = {}
    for pid, name in connection.execute(sa.select(participant.c.id, participant.c.name)).all():
        key = skeleton(name)
        if key in taken:  # an old look-alike keeps its name; its skeleton gets its id
            key = f"{key}#{pid}"
        taken[key] = pid
        connection.execute(participant.update().where(participant.c.id == pid)
                           .values(name_skeleton=key))
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.alter_column("name_skeleton", existing_type=sa.String(length=256),
                              nullable=False)
        batch_op.create_index(batch_op.f("ix_participant_name_skeleton"), ["name_skeleton"],
                              unique=True)


def downgrade() -> None:
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_name_skeleton"))
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("key_expires_at")
        batch_op.drop_column("name_skeleton")
