"""tailhook.asyncpg.publish against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

import tailhook.asyncpg
from conftest import Database


class Boom(Exception):
    pass


def test_a_rolled_back_transaction_publishes_nothing_and_a_committed_one_publishes_one(db: Database) -> None:
    async def main() -> uuid.UUID:
        conn = await asyncpg.connect(db.url)
        try:
            with pytest.raises(Boom):
                async with conn.transaction():
                    await tailhook.asyncpg.publish(conn, "invoice.paid", {"invoice": 1})
                    raise Boom
            async with conn.transaction():
                return await tailhook.asyncpg.publish(conn, "invoice.paid", {"invoice": 2}, tenant="acme", ordering_key="k")
        finally:
            await conn.close()

    event_id = asyncio.run(main())
    assert type(event_id) is uuid.UUID
    with db.connect() as conn:
        rows = conn.execute("SELECT event_id, payload, tenant, ordering_key FROM tailhook.outbox").fetchall()
    assert rows == [(event_id, {"invoice": 2}, "acme", "k")]


def test_a_pooled_connection_and_an_own_event_id(db: Database) -> None:
    mine = uuid.uuid4()

    async def main() -> uuid.UUID:
        async with asyncpg.create_pool(db.url, min_size=1, max_size=1) as pool:
            async with pool.acquire() as conn:
                return await tailhook.asyncpg.publish(conn, "a.b", [], event_id=mine)

    assert asyncio.run(main()) == mine
    assert db.scalar("SELECT count(*) FROM tailhook.outbox WHERE event_id = %s", mine) == 1
