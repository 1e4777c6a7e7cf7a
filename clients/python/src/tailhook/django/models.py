"""Unmanaged models over tailhook's tables and its delivery log view (tailhook owns the schema; Django never changes it)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now


class Endpoint(models.Model):
    """`tailhook.endpoints`. Its CHECKs and triggers are the rules; `admin.EndpointForm` asks the database."""

    id = models.BigAutoField(primary_key=True)
    name = models.TextField(unique=True)
    tenant = models.TextField(null=True, blank=True)
    url = models.TextField()
    event_types = ArrayField(models.TextField(), blank=True, db_default=models.Value(["*"], ArrayField(models.TextField())))
    filter = models.JSONField(null=True, blank=True)
    filter_path = models.TextField(null=True, blank=True)
    secrets = ArrayField(models.TextField(), blank=True, db_default=models.Value([], ArrayField(models.TextField())))
    headers = models.JSONField(blank=True, db_default=models.Value({}, models.JSONField()))
    enabled = models.BooleanField(db_default=True)
    disabled_reason = models.TextField(null=True, blank=True)
    paused_until = models.DateTimeField(null=True, blank=True)
    max_attempts = models.IntegerField(null=True, blank=True)
    timeout_ms = models.IntegerField(null=True, blank=True)
    rate_limit_per_sec = models.IntegerField(null=True, blank=True)
    max_in_flight = models.IntegerField(null=True, blank=True)
    backoff_initial_ms = models.IntegerField(null=True, blank=True)
    backoff_max_ms = models.IntegerField(null=True, blank=True)
    ordered = models.BooleanField(db_default=False)
    managed_by = models.TextField(db_default="sql", editable=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)
    consecutive_failures = models.IntegerField(db_default=0, editable=False)
    failing_since = models.DateTimeField(null=True, editable=False)
    invalid_reason = models.TextField(null=True, editable=False)
    auto_disabled = models.BooleanField(db_default=False, editable=False)
    transform = models.TextField(null=True, blank=True)
    legacy_signature = models.JSONField(null=True, blank=True)
    legacy_secret = models.TextField(null=True, blank=True)
    standard_signature = models.BooleanField(db_default=True)
    propagate_trace = models.BooleanField(db_default=True)
    tls_client_cert = models.TextField(null=True, blank=True)
    tls_client_key = models.TextField(null=True, blank=True)
    tls_ca_bundle = models.TextField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = '"tailhook"."endpoints"'
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """`tailhook.outbox`: one published event."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, db_default=models.Func(function="tailhook.uuid_v7", output_field=models.UUIDField()))
    event_type = models.TextField()
    payload = models.JSONField()
    tenant = models.TextField(null=True, blank=True)
    ordering_key = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    dispatched_at = models.DateTimeField(null=True, blank=True)
    traceparent = models.TextField(null=True, blank=True)
    tracestate = models.TextField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = '"tailhook"."outbox"'

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class Delivery(models.Model):
    """`tailhook.deliveries`: one event to one endpoint."""

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, models.DO_NOTHING, db_column="outbox_id", db_constraint=False, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, models.DO_NOTHING, db_constraint=False, related_name="deliveries")
    status = models.TextField()
    attempts = models.IntegerField()
    next_attempt_at = models.DateTimeField(null=True)
    locked_until = models.DateTimeField(null=True)
    locked_by = models.TextField(null=True)
    lease = models.BigIntegerField(null=True)
    last_status_code = models.IntegerField(null=True)
    last_error = models.TextField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True)
    ordering_key = models.TextField(null=True)
    transform_claims = models.SmallIntegerField(db_default=0, editable=False)
    # Who last asked for it to be sent again, and when (schema version 29).
    redelivered_by = models.TextField(null=True, editable=False)
    redelivered_at = models.DateTimeField(null=True, editable=False)

    class Meta:
        managed = False
        db_table = '"tailhook"."deliveries"'
        verbose_name_plural = "deliveries"


class Attempt(models.Model):
    """`tailhook.attempts`: one HTTP request of a delivery."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, models.DO_NOTHING, db_constraint=False, related_name="attempt_set")
    attempt = models.IntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.IntegerField()
    status_code = models.IntegerField(null=True)
    error_kind = models.TextField(null=True)
    error = models.TextField(null=True)
    response_body = models.TextField(null=True)
    # Who asked for the redelivery this attempt belongs to (schema version 29).
    requested_by = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = '"tailhook"."attempts"'


class DeliveryLog(models.Model):
    """`tailhook.delivery_log` (a view): one row per delivery with its event and latest attempt."""

    delivery_id = models.BigIntegerField(primary_key=True)
    event_id = models.UUIDField()
    event_type = models.TextField()
    tenant = models.TextField(null=True)
    endpoint = models.TextField()
    status = models.TextField()
    attempts = models.IntegerField()
    published_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True)
    next_attempt_at = models.DateTimeField(null=True)
    in_flight = models.BooleanField()
    last_attempt_at = models.DateTimeField(null=True)
    last_status_code = models.IntegerField(null=True)
    last_error_kind = models.TextField(null=True)
    last_attempt_error = models.TextField(null=True)
    last_error = models.TextField(null=True)
    last_duration_ms = models.IntegerField(null=True)
    outbox_id = models.BigIntegerField()
    endpoint_id = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = '"tailhook"."delivery_log"'
        ordering = ["-delivery_id"]
