"""tailhook's schema as the steps `tailhook migrate --print-sql --all` prints, for migration tools and test fixtures.

Each step is one statement. A transactional step takes tailhook's migration
lock, does nothing if `tailhook.schema_migrations` already lists its version,
and otherwise applies that version and records it, so it may run inside a
migration tool's transaction or on its own. A step outside a transaction
(`CREATE INDEX CONCURRENTLY`) must run on its own in autocommit. Running the
steps again, or after `tailhook migrate` went further, changes nothing, once
the steps marked `skip_once_partitioned` (version 10's concurrent index
builds) are left out when `tailhook.deliveries` is already partitioned
(version 31; PostgreSQL builds no index CONCURRENTLY on a partitioned table):
ask the database with `PARTITIONED` first and pass its answer to `steps()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, List

__all__ = ["Step", "steps", "sql", "install", "PARTITIONED"]

_SKIP_ONCE_PARTITIONED = "-- tailhook: skip once tailhook.deliveries is partitioned"

#: One row, one boolean: whether `tailhook.deliveries` is partitioned (then
#: `steps(partitioned=True)` leaves out the steps that cannot run again).
PARTITIONED = (
    "SELECT coalesce((SELECT relkind = 'p' FROM pg_catalog.pg_class"
    " WHERE oid = pg_catalog.to_regclass('tailhook.deliveries')), false)"
)

_MARKER = re.compile(r"^-- tailhook step (\d+) (\S+)(?: \(([^)]*)\))?: (transactional|outside a transaction)$", re.M)


@dataclass(frozen=True)
class Step:
    version: int
    name: str
    outside_a_transaction: bool
    sql: str
    skip_once_partitioned: bool = False


def sql() -> str:
    """The whole script shipped with this package (`psql -v ON_ERROR_STOP=1 -f` runs it as it is)."""
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def steps(partitioned: bool = False) -> List[Step]:
    """The script's steps, in order; with `partitioned` (what `PARTITIONED` answered), without those that skip then."""
    script = sql()
    marks = list(_MARKER.finditer(script))
    if not marks:
        raise RuntimeError("schema.sql holds no tailhook steps")
    out = []
    for mark, following in zip(marks, marks[1:] + [None]):
        end = following.start() if following else len(script)
        text = script[mark.start() : end].strip() + "\n"
        skip = _SKIP_ONCE_PARTITIONED in text.splitlines()
        if skip and partitioned:
            continue
        out.append(
            Step(
                version=int(mark.group(1)),
                name=mark.group(2),
                outside_a_transaction=mark.group(4) == "outside a transaction",
                sql=text,
                skip_once_partitioned=skip,
            )
        )
    return out


def latest_version() -> int:
    """The highest schema version the shipped steps bring a database to."""
    return max(step.version for step in steps())


def install(conn: Any) -> None:
    """Installs or upgrades the schema through a DB-API connection in autocommit mode (psycopg 3 or psycopg2).

    Each step runs on its own, as `psql -f` runs the script. For a
    connection in a transaction, run the transactional steps yourself and
    the others after committing.
    """
    if not getattr(conn, "autocommit", False):
        raise ValueError("tailhook.schema.install needs a connection in autocommit mode (some steps cannot run in a transaction)")
    cur = conn.cursor()
    try:
        cur.execute(PARTITIONED)
        partitioned = bool(cur.fetchone()[0])
    finally:
        cur.close()
    for step in steps(partitioned):
        cur = conn.cursor()
        try:
            cur.execute(step.sql)
        finally:
            cur.close()
