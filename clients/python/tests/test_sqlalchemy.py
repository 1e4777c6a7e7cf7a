"""tailhook.sqlalchemy against a real PostgreSQL: publish in a Session or Connection, and Tables that match the schema."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from conftest import Database
from tailhook import sqlalchemy as th


class Boom(Exception):
    pass


@pytest.fixture
def engine(db: Database):
    engine = create_engine(db.url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


def test_publish_inside_a_rolled_back_session_publishes_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        th.publish(session, "invoice.paid", {"invoice": 1})
        assert session.scalar(select(func.count()).select_from(th.outbox)) == 1, "visible inside the transaction"
        session.rollback()
    with pytest.raises(Boom):
        with Session(engine) as session, session.begin():
            th.publish(session, "invoice.paid", {"invoice": 2})
            raise Boom
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(th.outbox)) == 0


def test_a_committed_session_or_connection_publishes_one_row_each(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        a = th.publish(session, "invoice.paid", {"invoice": 3}, tenant="acme", ordering_key="inv-3")
    mine = uuid.uuid4()
    with engine.begin() as conn:
        b = th.publish(conn, "invoice.voided", {"invoice": 3}, event_id=mine)
    assert b == mine and type(a) is uuid.UUID
    with engine.connect() as conn:
        rows = conn.execute(select(th.outbox.c.event_id, th.outbox.c.payload, th.outbox.c.tenant).order_by(th.outbox.c.id)).all()
    assert [tuple(r) for r in rows] == [(a, {"invoice": 3}, "acme"), (mine, {"invoice": 3}, None)]


@pytest.mark.filterwarnings("ignore:Did not recognize type .jsonpath.")
def test_the_tables_have_exactly_the_databases_columns(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in th.metadata.tables.values():
        in_db = [c["name"] for c in inspector.get_columns(table.name, schema="tailhook")]
        # The partition key (schema version 31) is left out: rows written
        # without it hold '-infinity', which psycopg cannot load.
        in_db = [c for c in in_db if not (table.name in ("deliveries", "attempts") and c == "event_at")]
        assert [c.name for c in table.columns] == in_db, table.name
