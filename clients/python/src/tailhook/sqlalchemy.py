"""SQLAlchemy `Table`s for tailhook's schema (read them, never `create_all` them) and `publish` for a Session or Connection.

The tables carry no CHECKs, triggers or functions: the schema comes from
`tailhook migrate` or `tailhook.schema` (see the package's README). Keep
`metadata` out of Alembic's autogenerate (`include_object`).
"""

from __future__ import annotations

import uuid
from typing import Any, Optional, Union

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import _core

__all__ = ["metadata", "outbox", "endpoints", "deliveries", "attempts", "delivery_log", "publish"]

metadata = MetaData(schema="tailhook")


def _ts(name: str, **kw: Any) -> Column[Any]:
    return Column(name, DateTime(timezone=True), **kw)


outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("tenant", Text),
    Column("ordering_key", Text),
    _ts("created_at", nullable=False),
    _ts("dispatched_at"),
    Column("traceparent", Text),
    Column("tracestate", Text),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("tenant", Text),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False, server_default=text("'{*}'")),
    Column("filter", JSONB),
    Column("filter_path", JSONPATH),
    Column("secrets", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text),
    _ts("paused_until"),
    Column("max_attempts", Integer),
    Column("timeout_ms", Integer),
    Column("rate_limit_per_sec", Integer),
    Column("max_in_flight", Integer),
    Column("ordered", Boolean, nullable=False, server_default=text("false")),
    Column("managed_by", Text, nullable=False, server_default=text("'sql'")),
    _ts("created_at", nullable=False, server_default=text("now()")),
    _ts("updated_at", nullable=False, server_default=text("now()")),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    _ts("failing_since"),
    Column("invalid_reason", Text),
    Column("auto_disabled", Boolean, nullable=False, server_default=text("false")),
    Column("transform", Text),
    Column("legacy_signature", JSONB),
    Column("legacy_secret", Text),
    Column("standard_signature", Boolean, nullable=False, server_default=text("true")),
    Column("backoff_initial_ms", Integer),
    Column("backoff_max_ms", Integer),
    Column("propagate_trace", Boolean, nullable=False, server_default=text("true")),
    Column("tls_client_cert", Text),
    Column("tls_client_key", Text),
    Column("tls_ca_bundle", Text),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("endpoint_id", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    _ts("next_attempt_at"),
    _ts("locked_until"),
    Column("locked_by", Text),
    Column("lease", BigInteger),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("completed_at"),
    Column("ordering_key", Text),
    Column("transform_claims", SmallInteger, nullable=False, server_default=text("0")),
    Column("redelivered_by", Text),
    _ts("redelivered_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("delivery_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    _ts("started_at", nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error_kind", Text),
    Column("error", Text),
    Column("response_body", Text),
    Column("requested_by", Text),
)

# A view: one row per delivery with its event and latest attempt.
delivery_log = Table(
    "delivery_log",
    metadata,
    Column("delivery_id", BigInteger, primary_key=True),
    Column("event_id", Uuid),
    Column("event_type", Text),
    Column("tenant", Text),
    Column("endpoint", Text),
    Column("status", Text),
    Column("attempts", Integer),
    _ts("published_at"),
    _ts("completed_at"),
    _ts("next_attempt_at"),
    Column("in_flight", Boolean),
    _ts("last_attempt_at"),
    Column("last_status_code", Integer),
    Column("last_error_kind", Text),
    Column("last_attempt_error", Text),
    Column("last_error", Text),
    Column("last_duration_ms", Integer),
    Column("outbox_id", BigInteger),
    Column("endpoint_id", BigInteger),
    info={"is_view": True},
)


def publish(
    session_or_connection: Union[Session, Connection],
    type: str,
    data: Any,
    *,
    tenant: Optional[str] = None,
    ordering_key: Optional[str] = None,
    event_id: Optional[uuid.UUID] = None,
    traceparent: Optional[str] = None,
    tracestate: Optional[str] = None,
) -> uuid.UUID:
    """Writes one event to `tailhook.outbox` in the session's (or connection's) transaction; returns its event id.

    Every value is a bind parameter (the JSON cast is `CAST(:data AS jsonb)`,
    never `:data::jsonb`, which `text()` does not read as a parameter). The
    event is delivered only if that transaction commits.
    """
    event_id = _core.event_id_of(event_id)
    trace = _core.traced(traceparent, tracestate)
    sql = text(_core.statement({name: f":{name}" for name in _core.NAMES}, event_id, trace))
    params: dict[str, Any] = {
        "type": _core.check_type(type),
        "data": _core.encode(data),
        "tenant": tenant,
        "ordering_key": ordering_key,
    }
    if event_id is not None:
        params["event_id"] = str(event_id)
    if trace:
        params.update(traceparent=traceparent, tracestate=tracestate)
    return _core.returned(session_or_connection.execute(sql, params).scalar_one())
