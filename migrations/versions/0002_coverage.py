"""coverage: baselines, policies, item lists, scenarios

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Seeds the default targets of DESIGN.md §1 as policies (administrators edit them afterwards)
and the "Pandemic wave" scenario.
"""

import datetime

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scenarios',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenarios')),
    sa.UniqueConstraint('name', name=op.f('uq_scenarios_name'))
    )
    op.create_table('baselines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('weekly_use', sa.Numeric(precision=16, scale=4), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('annual_use', sa.JSON(), nullable=True),
    sa.Column('years_used', sa.JSON(), nullable=True),
    sa.Column('years_replaced', sa.JSON(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('manual', 'annual_3y')", name=op.f('ck_baselines_source')),
    sa.CheckConstraint('weekly_use >= 0', name=op.f('ck_baselines_weekly_use')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_baselines_item_id_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_baselines_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_baselines_recorded_by_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_baselines'))
    )
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.create_index('ix_baselines_org_item', ['organisation_id', 'item_id', 'valid_from'], unique=False)

    op.create_table('item_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_item_lists_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_lists')),
    sa.UniqueConstraint('organisation_id', 'code', name=op.f('uq_item_lists_organisation_id_code'))
    )
    with op.batch_alter_table('item_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_lists_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('organisation_kind', sa.String(length=20), nullable=True),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('item_list', sa.String(length=40), nullable=True),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('pool', sa.String(length=20), nullable=False),
    sa.Column('min_days', sa.Numeric(precision=10, scale=4), nullable=False),
    sa.Column('target_days', sa.Numeric(precision=10, scale=4), nullable=False),
    sa.Column('max_days', sa.Numeric(precision=10, scale=4), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("category IS NULL OR category IN ('consumable', 'ppe', 'drug', 'equipment')", name=op.f('ck_policies_category')),
    sa.CheckConstraint("organisation_kind IS NULL OR organisation_kind IN ('supply_centre', 'health_trust', 'hospital_pharmacy', 'municipality', 'wholesaler', 'region')", name=op.f('ck_policies_organisation_kind')),
    sa.CheckConstraint("pool IN ('operational', 'emergency', 'all')", name=op.f('ck_policies_pool')),
    sa.CheckConstraint('(CASE WHEN category IS NULL THEN 0 ELSE 1 END + CASE WHEN item_list IS NULL THEN 0 ELSE 1 END + CASE WHEN item_id IS NULL THEN 0 ELSE 1 END) = 1', name=op.f('ck_policies_one_item_scope')),
    sa.CheckConstraint('(organisation_kind IS NULL) <> (organisation_id IS NULL)', name=op.f('ck_policies_one_organisation_scope')),
    sa.CheckConstraint('min_days >= 0 AND target_days >= min_days AND (max_days IS NULL OR max_days >= target_days)', name=op.f('ck_policies_days')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_policies_item_id_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_policies_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_policies_name'))
    )
    op.create_table('scenario_factors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scenario_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('factor', sa.Numeric(precision=8, scale=3), nullable=False),
    sa.CheckConstraint("category IS NULL OR category IN ('consumable', 'ppe', 'drug', 'equipment')", name=op.f('ck_scenario_factors_category')),
    sa.CheckConstraint('(category IS NULL) <> (item_id IS NULL)', name=op.f('ck_scenario_factors_one_scope')),
    sa.CheckConstraint('factor > 0', name=op.f('ck_scenario_factors_factor')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_scenario_factors_item_id_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['scenario_id'], ['scenarios.id'], name=op.f('fk_scenario_factors_scenario_id_scenarios'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenario_factors'))
    )
    with op.batch_alter_table('scenario_factors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scenario_factors_scenario_id'), ['scenario_id'], unique=False)

    op.create_table('item_list_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_list_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('added', 'changed', 'removed')", name=op.f('ck_item_list_changes_action')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_item_list_changes_item_id_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['item_list_id'], ['item_lists.id'], name=op.f('fk_item_list_changes_item_list_id_item_lists'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_item_list_changes_recorded_by_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_list_changes'))
    )
    with op.batch_alter_table('item_list_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_list_changes_item_list_id'), ['item_list_id'], unique=False)

    op.create_table('item_list_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_list_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('min_days', sa.Numeric(precision=10, scale=4), nullable=True),
    sa.Column('criticality', sa.String(length=10), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("criticality IS NULL OR criticality IN ('high', 'medium', 'low')", name=op.f('ck_item_list_entries_criticality')),
    sa.CheckConstraint('min_days IS NULL OR min_days >= 0', name=op.f('ck_item_list_entries_min_days')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_item_list_entries_item_id_items'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['item_list_id'], ['item_lists.id'], name=op.f('fk_item_list_entries_item_list_id_item_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_list_entries')),
    sa.UniqueConstraint('item_list_id', 'item_id', name=op.f('uq_item_list_entries_item_list_id_item_id'))
    )
    op.create_table('item_list_alternatives',
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['item_list_entries.id'], name=op.f('fk_item_list_alternatives_entry_id_item_list_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_item_list_alternatives_item_id_items'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('entry_id', 'item_id', name=op.f('pk_item_list_alternatives'))
    )


    _seed()


# Targets in days of normal use; name, organisation kind, item scope, pool, min, target, max.
DEFAULT_POLICIES = [
    ("Supply centre safety stock: consumables", "supply_centre", {"category": "consumable"}, "operational", 21, 28, None),
    ("Supply centre safety stock: PPE", "supply_centre", {"category": "ppe"}, "operational", 21, 28, None),
    ("Supply centre safety stock: drugs", "supply_centre", {"category": "drug"}, "operational", 21, 28, None),
    ("Supply centre emergency stock", "supply_centre", {"item_list": "emergency"}, "emergency", 84, 112, None),
    ("PPE duty", "municipality", {"category": "ppe"}, "all", 91.3125, 91.3125, None),
    ("Critical drug list", "hospital_pharmacy", {"item_list": "critical-drugs"}, "all", 14, 14, None),
    ("Wholesaler critical drugs", "wholesaler", {"category": "drug"}, "all", 91, 182, None),
]


def _seed() -> None:
    policies = sa.table(
        "policies", sa.column("name"), sa.column("organisation_kind"), sa.column("category"),
        sa.column("item_list"), sa.column("pool"), sa.column("min_days"), sa.column("target_days"),
        sa.column("max_days"), sa.column("active"), sa.column("updated_at", sa.DateTime(timezone=True)))
    now = datetime.datetime.now(datetime.timezone.utc)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as naive UTC on SQLite, as the models do
    op.bulk_insert(policies, [
        {"name": name, "organisation_kind": kind, "category": scope.get("category"),
         "item_list": scope.get("item_list"), "pool": pool, "min_days": min_days,
         "target_days": target_days, "max_days": max_days, "active": True, "updated_at": now}
        for name, kind, scope, pool, min_days, target_days, max_days in DEFAULT_POLICIES])
    scenarios = sa.table("scenarios", sa.column("id"), sa.column("name"), sa.column("description"))
    op.bulk_insert(scenarios, [{"id": 1, "name": "Pandemic wave",
                                "description": "A pandemic wave: PPE use ×4 and drug use ×2 for 12 weeks."}])
    factors = sa.table("scenario_factors", sa.column("scenario_id"), sa.column("category"),
                       sa.column("factor"))
    op.bulk_insert(factors, [{"scenario_id": 1, "category": "ppe", "factor": 4},
                             {"scenario_id": 1, "category": "drug", "factor": 2}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('scenarios', 'id'), 1)")


def downgrade() -> None:
    op.drop_table('item_list_alternatives')
    op.drop_table('item_list_entries')
    with op.batch_alter_table('item_list_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_list_changes_item_list_id'))

    op.drop_table('item_list_changes')
    with op.batch_alter_table('scenario_factors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scenario_factors_scenario_id'))

    op.drop_table('scenario_factors')
    op.drop_table('policies')
    with op.batch_alter_table('item_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_lists_organisation_id'))

    op.drop_table('item_lists')
    with op.batch_alter_table('baselines', schema=None) as batch_op:
        batch_op.drop_index('ix_baselines_org_item')

    op.drop_table('baselines')
    op.drop_table('scenarios')
