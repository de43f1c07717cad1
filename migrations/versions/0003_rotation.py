"""rotation tasks and scheduler runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_leases',
    sa.Column('job', sa.String(length=60), nullable=False),
    sa.Column('holder', sa.String(length=120), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job', name=op.f('pk_job_leases'))
    )
    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=60), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('runner', sa.String(length=120), nullable=False),
    sa.CheckConstraint("outcome IN ('running', 'succeeded', 'failed')", name=op.f('ck_job_runs_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_runs_job_started', ['job', 'started_at'], unique=False)

    op.create_table('rotation_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('depot_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('at_risk', sa.BigInteger(), nullable=False),
    sa.Column('rotate_by', sa.Date(), nullable=True),
    sa.Column('finish_by', sa.Date(), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by_id', sa.Integer(), nullable=True),
    sa.Column('posting_id', sa.String(length=36), nullable=True),
    sa.CheckConstraint("state IN ('planned', 'due', 'overdue', 'done', 'cancelled')", name=op.f('ck_rotation_tasks_state')),
    sa.CheckConstraint('quantity >= 0 AND at_risk >= 0', name=op.f('ck_rotation_tasks_quantities')),
    sa.ForeignKeyConstraint(['completed_by_id'], ['users.id'], name=op.f('fk_rotation_tasks_completed_by_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['depot_id'], ['depots.id'], name=op.f('fk_rotation_tasks_depot_id_depots'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_rotation_tasks_item_id_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_rotation_tasks_lot_id_lots'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_rotation_tasks_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rotation_tasks'))
    )
    with op.batch_alter_table('rotation_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_rotation_tasks_lot_depot', ['lot_id', 'depot_id'], unique=False)
        batch_op.create_index('ix_rotation_tasks_org_state', ['organisation_id', 'state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rotation_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_rotation_tasks_org_state')
        batch_op.drop_index('ix_rotation_tasks_lot_depot')

    op.drop_table('rotation_tasks')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_runs_job_started')

    op.drop_table('job_runs')
    op.drop_table('job_leases')
