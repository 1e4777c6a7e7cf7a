"""The schema installed from an Alembic migration, as docs/guide/migrating.md shows it."""

from __future__ import annotations

import subprocess

from alembic import op
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, text

import tailhook.schema
from conftest import BINARY, Database, binary_env


def upgrade() -> None:
    """The body of the guide's Alembic migration, unchanged."""
    partitioned = op.get_bind().exec_driver_sql(tailhook.schema.PARTITIONED).scalar()
    for step in tailhook.schema.steps(partitioned):
        run = lambda: op.get_bind().exec_driver_sql(step.sql, execution_options={"no_parameters": True})  # noqa: E731
        if step.outside_a_transaction:
            with op.get_context().autocommit_block():
                run()
        else:
            run()


def run_migration(db: Database) -> None:
    engine = create_engine(db.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"transactional_ddl": True})
            with Operations.context(context), context.begin_transaction():
                upgrade()
    finally:
        engine.dispose()


def test_an_alembic_migration_installs_the_schema_and_running_it_again_changes_nothing(empty_db: Database) -> None:
    run_migration(empty_db)
    before = empty_db.scalar("SELECT string_agg(version || ' ' || applied_at, ',' ORDER BY version) FROM tailhook.schema_migrations")
    run_migration(empty_db)
    assert empty_db.scalar("SELECT string_agg(version || ' ' || applied_at, ',' ORDER BY version) FROM tailhook.schema_migrations") == before
    versions = empty_db.scalar("SELECT array_agg(version ORDER BY version) FROM tailhook.schema_migrations")
    assert versions == sorted({s.version for s in tailhook.schema.steps()})
    out = subprocess.run([str(BINARY), "migrate"], env=binary_env(DATABASE_URL=empty_db.url), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("schema is up to date"), out.stdout + out.stderr
    engine = create_engine(empty_db.url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        valid = conn.execute(text("SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relname = 'deliveries_ordered' AND x.indisvalid")).scalar()
    engine.dispose()
    assert valid == 1, "the concurrent build ran to the end"
