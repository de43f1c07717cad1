"""coverage window indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

What coverage reads is bounded by the stock on hand and the 13-week window, not by the length of
the ledger: the lots on hand in a depot (a partial index of balances above zero; used-up lots
keep their zero balance rows for ever), and one lot's movements since a day (``occurred_at``
added to the lot index, so coverage of a few items of a supply centre reads only their window).
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('balances', schema=None) as batch_op:
        batch_op.create_index('ix_balances_on_hand', ['depot_id', 'pool'], unique=False,
                              postgresql_where=sa.text('quantity > 0'), sqlite_where=sa.text('quantity > 0'))

    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.create_index('ix_movements_lot_depot_pool_occurred', ['lot_id', 'depot_id', 'pool', 'occurred_at'],
                              unique=False)
        batch_op.drop_index('ix_movements_lot_depot_pool')


def downgrade() -> None:
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.create_index('ix_movements_lot_depot_pool', ['lot_id', 'depot_id', 'pool'], unique=False)
        batch_op.drop_index('ix_movements_lot_depot_pool_occurred')

    with op.batch_alter_table('balances', schema=None) as batch_op:
        batch_op.drop_index('ix_balances_on_hand', postgresql_where=sa.text('quantity > 0'),
                            sqlite_where=sa.text('quantity > 0'))
