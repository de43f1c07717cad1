"""computed use kept per organisation, item and day

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Coverage of a supply centre with 3,000 items needs a computed baseline for most of them: 13 weeks
of its movements (about 80,000 rows at national scale) on every read. The figures are kept per
organisation, item and evaluation day instead; postings delete the rows of what they touch in
their own transaction, so a row that exists is never stale.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'computed_use',
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('evaluated_on', sa.Date(), nullable=False),
        sa.Column('window_weeks', sa.Integer(), nullable=False),
        sa.Column('issued', sa.BigInteger(), nullable=True),
        sa.Column('in_stock_days', sa.Integer(), nullable=False),
        sa.Column('window_days', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_computed_use_item_id_items'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_computed_use_organisation_id_organisations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('organisation_id', 'item_id', 'evaluated_on', 'window_weeks',
                                name=op.f('pk_computed_use')),
    )


def downgrade() -> None:
    op.drop_table('computed_use')
