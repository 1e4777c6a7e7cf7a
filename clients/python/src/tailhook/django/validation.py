"""Asks the database whether a row may be written: the write is tried in a savepoint and rolled back.

tailhook's rules for an endpoint live in the database (CHECKs, triggers,
functions) and change with its versions; nothing here copies them. A
refusal becomes messages that name the column and the rule, built from the
error's primary message and the catalog, never from its DETAIL (which
PostgreSQL fills with the whole row, secrets included).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

from django.db import DatabaseError, connections, models, router, transaction

__all__ = ["database_errors"]

# Classes of SQLSTATE that judge the row: data exceptions (22: a value the
# type refuses), integrity violations (23: CHECK, NOT NULL, UNIQUE), a
# trigger's RAISE (P0001), and a jsonpath that does not parse (42601).
_JUDGING = ("22", "23")
_JUDGING_CODES = ("42601", "P0001")


class _Probe(Exception):
    """Raised inside the savepoint to roll the probing write back."""


def database_errors(instance: models.Model, using: Optional[str] = None) -> Dict[Optional[str], List[str]]:
    """What the database says about writing `instance` (insert or update): {column or None: [messages]}, empty if it would accept it.

    Nothing is kept: the write happens in a savepoint that is rolled back, no
    model signal is sent and `instance` is left as it was. Errors that do not
    judge the row (a lost connection, a missing privilege) are raised.
    """
    model = type(instance)
    using = using or router.db_for_write(model, instance=instance)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    try:
        with transaction.atomic(using=using):
            if instance.pk is None or instance._state.adding:
                model._base_manager.using(using).bulk_create([copy.copy(instance)])
            else:
                values = {f.attname: getattr(instance, f.attname) for f in fields if f.editable}
                model._base_manager.using(using).filter(pk=instance.pk).update(**values)
            raise _Probe
    except _Probe:
        return {}
    except DatabaseError as error:
        verdict = _verdict(error, instance, using)
        if verdict is None:
            raise
        return verdict


def _verdict(error: DatabaseError, instance: models.Model, using: str) -> Optional[Dict[Optional[str], List[str]]]:
    cause: Any = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    diag = getattr(cause, "diag", None)
    if not sqlstate or not (sqlstate[:2] in _JUDGING or sqlstate in _JUDGING_CODES) or diag is None:
        return None
    message = diag.message_primary or "the database refused the row"
    columns: List[str] = [diag.column_name] if diag.column_name else []
    if diag.constraint_name:
        rule = _rule(instance, using, diag.constraint_name)
        if rule is not None:
            columns = columns or rule[0]
            message = f"{message}; the rule on {', '.join(columns) or 'the row'}: {rule[1]}"
    if diag.message_hint:
        message = f"{message} ({diag.message_hint})"
    message = _redacted(message, instance)
    if len(columns) == 1:
        return {columns[0]: [message]}
    return {None: [message]}


def _rule(instance: models.Model, using: str, constraint: str) -> Optional[tuple[List[str], str]]:
    """The columns a constraint covers and what it says (its comment, else its definition), from the catalog."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT array(SELECT a.attname::text FROM pg_catalog.pg_attribute a"
            "              WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) ORDER BY a.attnum),"
            "       coalesce(pg_catalog.obj_description(c.oid, 'pg_constraint'), pg_catalog.pg_get_constraintdef(c.oid))"
            "  FROM pg_catalog.pg_constraint c"
            " WHERE c.conname = %s AND c.conrelid = pg_catalog.to_regclass(%s)",
            [constraint, type(instance)._meta.db_table],
        )
        row = cursor.fetchone()
    # "NOT VALID" says only that rows older than the rule were not checked.
    return (list(row[0]), row[1].removesuffix(" NOT VALID")) if row else None


def _redacted(message: str, instance: models.Model) -> str:
    """`message` with every secret and header value of `instance` taken out (a rule's own text never needs them)."""
    values: List[str] = []
    for name in ("secrets",):
        values += [v for v in (getattr(instance, name, None) or []) if isinstance(v, str)]
    legacy_secret = getattr(instance, "legacy_secret", None)
    if isinstance(legacy_secret, str):
        values.append(legacy_secret)
    headers = getattr(instance, "headers", None)
    if isinstance(headers, dict):
        values += [v for v in headers.values() if isinstance(v, str)]
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4:
            message = message.replace(value, "[redacted]")
    return message
