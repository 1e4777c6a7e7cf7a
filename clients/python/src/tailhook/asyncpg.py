"""`publish` for asyncpg: the event is part of the connection's current transaction."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _core

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

__all__ = ["publish"]


async def publish(
    conn: "Union[asyncpg.Connection[Any], asyncpg.pool.PoolConnectionProxy[Any]]",
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

    Inside `async with conn.transaction():` the event is delivered only if
    that block commits; outside one it commits at once. Otherwise as
    `tailhook.publish`.
    """
    event_id = _core.event_id_of(event_id)
    params: list[Any] = [_core.check_type(type), _core.encode(data), tenant, ordering_key]
    names = ["type", "data", "tenant", "ordering_key"]
    trace = _core.traced(traceparent, tracestate)
    if trace:
        params, names = [*params, traceparent, tracestate], [*names, "traceparent", "tracestate"]
    if event_id is not None:
        params, names = [str(event_id), *params], ["event_id", *names]
    sql = _core.statement({name: f"${i}" for i, name in enumerate(names, 1)}, event_id, trace)
    return _core.returned(await conn.fetchval(sql, *params))
