"""Publish events to tailhook's outbox inside your own transaction.

`publish(conn, type, data, ...)` takes a DB-API connection of psycopg 3 (or
psycopg2); `tailhook.asyncpg`, `tailhook.django` and `tailhook.sqlalchemy`
have the same function for those libraries. `tailhook.schema` installs or
upgrades the schema from a migration tool or a test fixture.
"""

from __future__ import annotations

import uuid
from typing import Any, Optional, Protocol, Sequence

from . import _core

__all__ = ["publish"]
__version__ = "0.1.0"


class _Cursor(Protocol):
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Optional[Sequence[Any]]: ...

    def close(self) -> Any: ...


class _Connection(Protocol):
    def cursor(self) -> Any: ...


def publish(
    conn: _Connection,
    type: str,
    data: Any,
    *,
    tenant: Optional[str] = None,
    ordering_key: Optional[str] = None,
    event_id: Optional[uuid.UUID] = None,
    traceparent: Optional[str] = None,
    tracestate: Optional[str] = None,
) -> uuid.UUID:
    """Writes one event to `tailhook.outbox` on `conn` and returns its event id.

    The row is part of `conn`'s current transaction: it is delivered only if
    that transaction commits. `data` is anything `json.dumps` takes. With
    `event_id`, that id is used (a second event with the same id fails with
    the database's unique violation); without, the database makes one.
    Whatever the database refuses (its rules on event types, privileges) is
    raised as the driver's exception. `traceparent` and `tracestate` (W3C
    trace context, e.g. from `opentelemetry.propagate.inject`) make each
    delivery attempt continue that trace; a malformed one is refused.
    """
    event_id = _core.event_id_of(event_id)
    trace = _core.traced(traceparent, tracestate)
    sql = _core.statement({name: "%s" for name in _core.NAMES}, event_id, trace)
    params: list[Any] = [_core.check_type(type), _core.encode(data), tenant, ordering_key]
    if trace:
        params += [traceparent, tracestate]
    if event_id is not None:
        params = [str(event_id), *params]
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        row = cur.fetchone()
    finally:
        cur.close()
    return _core.returned(row[0] if row else None)
