"""What every flavour of publish shares: the SQL, the JSON encoding and the result."""

from __future__ import annotations

import json
import uuid
from typing import Any, Optional, Type

# `tailhook.publish` with named arguments: its parameters may gain defaults
# later without breaking callers. It takes no event id, so a caller's own id
# goes into the outbox row directly (which needs INSERT on tailhook.outbox;
# publish itself may be all a role is allowed).
PUBLISH = (
    "SELECT tailhook.publish(event_type => {type}, payload => CAST({data} AS jsonb), "
    "tenant => {tenant}, ordering_key => {ordering_key})"
)
PUBLISH_WITH_ID = (
    "INSERT INTO tailhook.outbox (event_id, event_type, payload, tenant, ordering_key) "
    "VALUES (CAST({event_id} AS uuid), {type}, CAST({data} AS jsonb), {tenant}, {ordering_key}) "
    "RETURNING event_id"
)
# With W3C trace context (schema version 25): only when the caller gives
# one, so publishing without it works against older schemas too.
PUBLISH_TRACED = PUBLISH[:-1] + ", traceparent => {traceparent}, tracestate => {tracestate})"
PUBLISH_WITH_ID_TRACED = (
    "INSERT INTO tailhook.outbox (event_id, event_type, payload, tenant, ordering_key, traceparent, tracestate) "
    "VALUES (CAST({event_id} AS uuid), {type}, CAST({data} AS jsonb), {tenant}, {ordering_key}, {traceparent}, {tracestate}) "
    "RETURNING event_id"
)
NAMES = ("type", "data", "tenant", "ordering_key", "event_id", "traceparent", "tracestate")


def statement(placeholders: dict[str, str], event_id: Optional[uuid.UUID], traced: bool = False) -> str:
    """The publishing statement with each parameter written as `placeholders` says."""
    if traced:
        return (PUBLISH_TRACED if event_id is None else PUBLISH_WITH_ID_TRACED).format(**placeholders)
    return (PUBLISH if event_id is None else PUBLISH_WITH_ID).format(**placeholders)


def traced(traceparent: Optional[str], tracestate: Optional[str]) -> bool:
    """Whether the caller gave trace context (checked by the database: a malformed one is refused, naming it)."""
    for name, value in (("traceparent", traceparent), ("tracestate", tracestate)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {value.__class__.__name__}")
    return traceparent is not None or tracestate is not None


def encode(data: Any, encoder: Optional[Type[json.JSONEncoder]] = None) -> str:
    """`data` as JSON text. NaN and infinities are refused here (PostgreSQL's jsonb refuses them too)."""
    return json.dumps(data, cls=encoder, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def check_type(type: str) -> str:
    if not isinstance(type, str):
        raise TypeError(f"event type must be a str, not {type.__class__.__name__}")
    return type


def event_id_of(event_id: Any) -> Optional[uuid.UUID]:
    """The caller's event id as a UUID (a str is parsed; anything else is refused)."""
    if event_id is None or isinstance(event_id, uuid.UUID):
        return event_id
    if isinstance(event_id, str):
        return uuid.UUID(event_id)
    raise TypeError(f"event_id must be a uuid.UUID or str, not {event_id.__class__.__name__}")


def returned(value: Any) -> uuid.UUID:
    """The event id the statement returned, as a plain `uuid.UUID` whatever the driver's type."""
    if value is None:
        raise RuntimeError("tailhook.publish returned no event id")
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))
