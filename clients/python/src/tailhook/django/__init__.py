"""tailhook for Django: unmanaged models of tailhook's tables, an admin that lets the database judge endpoints, and `publish`.

Add `"tailhook.django"` to `INSTALLED_APPS`; `migrate` then installs or
upgrades tailhook's schema (its migrations run the steps of
`tailhook.schema`), so test databases get it too.
"""

from __future__ import annotations

import uuid
from typing import Any, Optional

from .. import _core

__all__ = ["publish"]


def publish(
    type: str,
    data: Any,
    *,
    tenant: Optional[str] = None,
    ordering_key: Optional[str] = None,
    event_id: Optional[uuid.UUID] = None,
    traceparent: Optional[str] = None,
    tracestate: Optional[str] = None,
    using: Optional[str] = None,
) -> uuid.UUID:
    """Writes one event to `tailhook.outbox` on Django's connection (`using`, default "default"); returns its event id.

    Inside `transaction.atomic()` the event is part of that block: delivered
    only if it commits, gone if it rolls back. `data` may hold what
    `DjangoJSONEncoder` takes (datetimes, decimals, UUIDs).
    """
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import DEFAULT_DB_ALIAS, connections

    event_id = _core.event_id_of(event_id)
    trace = _core.traced(traceparent, tracestate)
    sql = _core.statement({name: "%s" for name in _core.NAMES}, event_id, trace)
    params: list[Any] = [_core.check_type(type), _core.encode(data, DjangoJSONEncoder), tenant, ordering_key]
    if trace:
        params += [traceparent, tracestate]
    if event_id is not None:
        params = [str(event_id), *params]
    with connections[using or DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _core.returned(row[0] if row else None)
