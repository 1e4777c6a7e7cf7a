"""tailhook.publish with psycopg 3 against a real PostgreSQL, and the schema installed from tailhook.schema."""

from __future__ import annotations

import subprocess
import uuid

import psycopg
import pytest

import tailhook
import tailhook.schema
from conftest import BINARY, Database, binary_env, new_secret, verify_standard_webhooks, wait_for


def test_a_rolled_back_transaction_publishes_nothing(db: Database) -> None:
    with db.connect() as conn:
        event_id = tailhook.publish(conn, "invoice.paid", {"invoice": 1})
        assert isinstance(event_id, uuid.UUID)
        conn.rollback()
    assert db.scalar("SELECT count(*) FROM tailhook.outbox") == 0


def test_a_committed_publish_writes_one_row_with_every_argument(db: Database) -> None:
    mine = uuid.uuid4()
    with db.connect() as conn:
        with conn.transaction():
            first = tailhook.publish(conn, "invoice.paid", {"n": 1, "name": "Zoë"}, tenant="acme", ordering_key="inv-1")
            second = tailhook.publish(conn, "invoice.voided", [1, 2], event_id=mine)
    assert second == mine
    with db.connect() as conn:
        rows = conn.execute("SELECT event_id, event_type, payload, tenant, ordering_key FROM tailhook.outbox ORDER BY id").fetchall()
    assert rows == [(first, "invoice.paid", {"n": 1, "name": "Zoë"}, "acme", "inv-1"), (mine, "invoice.voided", [1, 2], None, None)]


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_trace_context_is_stored_and_a_malformed_one_is_refused_naming_it(db: Database) -> None:
    mine = uuid.uuid4()
    with db.connect() as conn:
        with conn.transaction():
            tailhook.publish(conn, "a.b", {}, traceparent=TRACEPARENT, tracestate="congo=t61rcWkgMzE")
            tailhook.publish(conn, "a.c", {}, event_id=mine, traceparent=TRACEPARENT)
        rows = conn.execute("SELECT traceparent, tracestate FROM tailhook.outbox ORDER BY id").fetchall()
        assert rows == [(TRACEPARENT, "congo=t61rcWkgMzE"), (TRACEPARENT, None)]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="traceparent must be W3C trace context"):
            tailhook.publish(conn, "a.b", {}, traceparent="00-nope")


def test_the_same_event_id_twice_is_the_databases_unique_violation(db: Database) -> None:
    mine = uuid.uuid4()
    with db.connect(autocommit=True) as conn:
        tailhook.publish(conn, "a.b", {}, event_id=str(mine))  # a str is taken too
        with pytest.raises(psycopg.errors.UniqueViolation):
            tailhook.publish(conn, "a.b", {}, event_id=mine)
    assert db.scalar("SELECT count(*) FROM tailhook.outbox") == 1


def test_what_is_not_json_is_refused_before_the_database(db: Database) -> None:
    with db.connect() as conn:
        with pytest.raises(ValueError):
            tailhook.publish(conn, "a.b", {"x": float("nan")})
        with pytest.raises(TypeError):
            tailhook.publish(conn, "a.b", {"x": object()})
        with pytest.raises(TypeError):
            tailhook.publish(conn, 42, {})  # type: ignore[arg-type]


def test_what_the_database_refuses_is_raised_as_its_error(db: Database) -> None:
    with db.connect() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            tailhook.publish(conn, "", {})


def test_a_committed_publish_is_delivered_by_the_sidecar(db: Database, receiver, sidecar_for) -> None:
    secret = new_secret()
    with db.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('ep', %s, %s)", [receiver.url("/in"), [secret]])
    sidecar_for(db)
    with db.connect() as conn:
        event_id = tailhook.publish(conn, "order.shipped", {"order": 9}, ordering_key="o-9")
        conn.commit()
    wait_for("the delivery", lambda: len(receiver.requests()) == 1)
    (req,) = receiver.requests()
    assert req.headers["webhook-id"] == str(event_id) and req.json()["data"] == {"order": 9}
    verify_standard_webhooks(secret, req)


def test_install_applies_every_step_once_and_tailhook_migrate_then_has_nothing_to_do(empty_db: Database) -> None:
    with empty_db.connect(autocommit=True) as conn:
        tailhook.schema.install(conn)
        recorded = conn.execute("SELECT version, applied_at FROM tailhook.schema_migrations ORDER BY 1").fetchall()
        tailhook.schema.install(conn)  # a fixture run twice
        assert conn.execute("SELECT version, applied_at FROM tailhook.schema_migrations ORDER BY 1").fetchall() == recorded
    assert [r[0] for r in recorded] == sorted({s.version for s in tailhook.schema.steps()})
    out = subprocess.run([str(BINARY), "migrate"], env=binary_env(DATABASE_URL=empty_db.url), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("schema is up to date"), out.stdout


def test_install_refuses_a_connection_in_a_transaction(empty_db: Database) -> None:
    with empty_db.connect() as conn:
        with pytest.raises(ValueError, match="autocommit"):
            tailhook.schema.install(conn)


def test_the_shipped_steps_are_what_this_tailhook_prints() -> None:
    out = subprocess.run([str(BINARY), "migrate", "--print-sql", "--all"], env=binary_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == tailhook.schema.sql(), (
        "clients/python/src/tailhook/schema.sql is stale: regenerate it with "
        "`tailhook migrate --print-sql --all > clients/python/src/tailhook/schema.sql` and add a Django migration that installs it"
    )
