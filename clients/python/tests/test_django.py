"""tailhook.django against a real PostgreSQL: migrate installs the schema, publish joins atomic(), the admin lets the database judge."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import django
import pytest
from psycopg.conninfo import conninfo_to_dict

from conftest import Database, new_secret, verify_standard_webhooks, wait_for

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")
django.setup()
from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()  # responses carry the context their templates got

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402

import tailhook.django  # noqa: E402
import tailhook.schema  # noqa: E402
from tailhook.django.models import Attempt, Delivery, DeliveryLog, Endpoint, Event  # noqa: E402


class Boom(Exception):
    pass


@pytest.fixture
def django_db(empty_db: Database) -> Iterator[Database]:
    """Django's default connection on the test's fresh database, after `migrate` (which installs tailhook's schema)."""
    params = conninfo_to_dict(empty_db.url)
    connection.close()
    connection.settings_dict.update(
        NAME=params["dbname"], HOST=params.get("host", ""), PORT=params.get("port", ""), USER=params.get("user", ""), PASSWORD=params.get("password", "")
    )
    call_command("migrate", verbosity=0)
    try:
        yield empty_db
    finally:
        for c in connections.all():
            c.close()


def test_migrate_installs_tailhooks_schema_and_records_every_version(django_db: Database) -> None:
    versions = sorted(s.version for s in tailhook.schema.steps() if not s.outside_a_transaction)
    recorded = [r[0] for r in connection.cursor().execute("SELECT version FROM tailhook.schema_migrations ORDER BY 1").fetchall()]
    assert recorded == versions
    # Running Django's migrations again (a second test run, a re-deploy) changes nothing.
    call_command("migrate", "tailhook", "zero", verbosity=0)
    call_command("migrate", verbosity=0)
    assert connection.cursor().execute("SELECT count(*) FROM tailhook.schema_migrations").fetchone()[0] == len(versions)


# The partition key (schema version 31) is left out of the models: rows
# written without it, and rows retention keeps, hold '-infinity', which
# psycopg cannot load into a datetime.
LEFT_OUT = {"deliveries": {"event_at"}, "attempts": {"event_at"}}


def test_the_models_have_exactly_the_databases_columns(django_db: Database) -> None:
    for model in (Endpoint, Event, Delivery, Attempt, DeliveryLog):
        table = model._meta.db_table.split(".")[1].strip('"')
        with connection.cursor() as cur:
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'tailhook' AND table_name = %s", [table])
            in_db = {r[0] for r in cur.fetchall()}
        assert {f.column for f in model._meta.concrete_fields} == in_db - LEFT_OUT.get(table, set()), model.__name__


def test_rows_whose_partition_key_is_minus_infinity_load(django_db: Database) -> None:
    with connection.cursor() as cur:
        cur.execute(
            """WITH e AS (INSERT INTO tailhook.endpoints (name, url) VALUES ('undated', 'https://example.com/') RETURNING id),
                    o AS (INSERT INTO tailhook.outbox (event_type, payload) VALUES ('t', '{}') RETURNING id),
                    d AS (INSERT INTO tailhook.deliveries (outbox_id, endpoint_id) SELECT o.id, e.id FROM o, e RETURNING id)
               INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms) SELECT id, 1, now(), 5 FROM d"""
        )
        cur.execute("SELECT count(*) FROM tailhook.attempts WHERE event_at = '-infinity'")
        assert cur.fetchone()[0] == 1
    assert [a.delivery.endpoint.name for a in Attempt.objects.select_related("delivery__endpoint")] == ["undated"]


def test_a_rolled_back_atomic_block_publishes_nothing(django_db: Database) -> None:
    with pytest.raises(Boom):
        with transaction.atomic():
            tailhook.django.publish("invoice.paid", {"invoice": 1})
            assert Event.objects.count() == 1, "visible inside the block"
            raise Boom
    assert Event.objects.count() == 0
    # A rolled-back savepoint inside a committed block takes only its own event.
    with transaction.atomic():
        kept = tailhook.django.publish("invoice.paid", {"invoice": 2})
        with pytest.raises(Boom):
            with transaction.atomic():
                tailhook.django.publish("invoice.paid", {"invoice": 3})
                raise Boom
    assert list(Event.objects.values_list("event_id", flat=True)) == [kept]


def test_a_committed_atomic_block_publishes_one_event_the_sidecar_delivers(django_db: Database, receiver, sidecar_for) -> None:
    secret = new_secret()
    Endpoint.objects.create(name="billing", url=receiver.url("/hooks"), event_types=["invoice.*"], secrets=[secret])
    with transaction.atomic():
        event_id = tailhook.django.publish("invoice.paid", {"invoice": 7, "amount": "12.50"}, tenant=None)
    assert isinstance(event_id, uuid.UUID)
    assert Event.objects.count() == 1
    sidecar_for(django_db)
    wait_for("the delivery", lambda: len(receiver.requests()) == 1)
    wait_for("the delivery log", lambda: DeliveryLog.objects.filter(status="succeeded").count() == 1)
    (req,) = receiver.requests()
    assert req.path == "/hooks"
    assert req.headers["webhook-id"] == str(event_id)
    assert req.json()["type"] == "invoice.paid" and req.json()["data"] == {"invoice": 7, "amount": "12.50"}
    verify_standard_webhooks(secret, req)
    log = DeliveryLog.objects.get()
    assert (log.event_id, log.endpoint, log.attempts) == (event_id, "billing", 1)
    assert Delivery.objects.get().attempt_set.get().status_code == 204


@pytest.fixture
def admin_client(django_db: Database) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def endpoint_form(**overrides: str) -> dict:
    form = {"name": "legacy", "url": "https://hooks.example.com/in", "event_types": "invoice.paid", "secrets": new_secret(), "headers": "{}", "enabled": "on"}
    form.update(overrides)
    return form


def test_the_admin_refuses_an_invalid_endpoint_with_the_rule_and_never_echoes_the_secret(admin_client: Client) -> None:
    bad_secret = "your-secret-key-here"
    response = admin_client.post("/admin/tailhook/endpoint/add/", endpoint_form(secrets=bad_secret))
    assert response.status_code == 200, "the form comes back"
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["secrets"], errors
    (message,) = errors["secrets"]
    # The rule in words, naming the column, and the CHECK it runs ahead of.
    assert "secrets:" in message and "24 to 64 bytes" in message and "secrets_valid" in message, message
    assert bad_secret not in response.content.decode(), "the secret is neither in the error nor in the page"
    assert Endpoint.objects.count() == 0

    # Another rule, another column: the database's bound on timeout_ms.
    response = admin_client.post("/admin/tailhook/endpoint/add/", endpoint_form(timeout_ms="600000"))
    (message,) = response.context["adminform"].form.errors["timeout_ms"]
    assert "timeout_ms" in message and "60000" in message, message
    assert Endpoint.objects.count() == 0


def test_the_admin_refuses_a_retry_schedule_out_of_bounds_with_the_rule(admin_client: Client) -> None:
    response = admin_client.post("/admin/tailhook/endpoint/add/", endpoint_form(backoff_max_ms="604800001"))
    (message,) = response.context["adminform"].form.errors["backoff_max_ms"]
    assert "backoff_max_ms must be at most 604800000" in message, message
    # A rule on two columns is the form's error, naming both.
    response = admin_client.post("/admin/tailhook/endpoint/add/", endpoint_form(backoff_initial_ms="2000", backoff_max_ms="1000"))
    (message,) = response.context["adminform"].form.errors["__all__"]
    assert "backoff_max_ms must be at least backoff_initial_ms" in message and "backoff_initial_ms, backoff_max_ms" in message, message
    assert Endpoint.objects.count() == 0
    response = admin_client.post("/admin/tailhook/endpoint/add/", endpoint_form(backoff_initial_ms="60000", backoff_max_ms="60000"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert (Endpoint.objects.get().backoff_initial_ms, Endpoint.objects.get().backoff_max_ms) == (60000, 60000)


def test_the_admin_saves_a_valid_endpoint_and_keeps_its_secrets_when_left_empty(admin_client: Client) -> None:
    secret = new_secret()
    response = admin_client.post("/admin/tailhook/endpoint/add/", endpoint_form(secrets=secret))
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = Endpoint.objects.get()
    assert endpoint.secrets == [secret] and endpoint.event_types == ["invoice.paid"]
    page = admin_client.get(f"/admin/tailhook/endpoint/{endpoint.pk}/change/").content.decode()
    assert secret not in page, "a stored secret is never shown"
    response = admin_client.post(f"/admin/tailhook/endpoint/{endpoint.pk}/change/", endpoint_form(secrets="", url="https://hooks.example.com/v2"))
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secrets == [secret] and endpoint.url == "https://hooks.example.com/v2"


def test_probing_an_update_changes_nothing_when_refused(admin_client: Client) -> None:
    endpoint = Endpoint.objects.create(name="kept", url="https://hooks.example.com/a", secrets=[new_secret()])
    response = admin_client.post(f"/admin/tailhook/endpoint/{endpoint.pk}/change/", endpoint_form(name="kept", url="ftp://nope", secrets=""))
    assert "url" in response.context["adminform"].form.errors
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.com/a"
