"""A bad endpoint row written with SQL is refused naming the column and the rule, and the error never shows the row (secrets, URL, header values)."""

from __future__ import annotations

import json
from typing import Optional

import psycopg
import pytest
from psycopg import errors

from conftest import Database, new_secret

URL = "https://hooks.example.com/path-token-4711"
HEADER_VALUE = "hdr-value-9931"
INSERT = (
    "INSERT INTO tailhook.endpoints (name, url, secrets, headers, legacy_signature, legacy_secret)"
    " VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s)"
)


def full_text(exc: psycopg.Error) -> str:
    """Everything an application's error log could print of the exception."""
    d = exc.diag
    return " | ".join(
        str(part)
        for part in (d.message_primary, d.message_detail, d.message_hint, d.context, str(exc), repr(exc), exc.args)
    )


def refused(db: Database, row: tuple) -> errors.CheckViolation:
    with db.connect(autocommit=True) as conn:
        with pytest.raises(errors.CheckViolation) as caught:
            conn.execute(INSERT, row)  # type: ignore[arg-type]
    return caught.value


GOOD = new_secret()
HEADERS = json.dumps({"x-api-key": HEADER_VALUE})


@pytest.mark.parametrize(
    "column, row, hidden",
    [
        ("secrets", ("a", URL, ["your-secret-key-here"], HEADERS, None, None), ["your-secret-key-here"]),
        ("secrets", ("b", URL, [GOOD, "whsec_c2hvcnQ="], HEADERS, None, None), [GOOD, "whsec_c2hvcnQ="]),
        ("headers", ("c", URL, [GOOD], json.dumps({"x-api-key": 5, "x-b": HEADER_VALUE}), None, None), [GOOD]),
        ("url", ("d", "ftp://files.example.com/drop-token-1", [GOOD], HEADERS, None, None), ["drop-token", GOOD]),
        (
            "legacy_secret",
            ("e", URL, [GOOD], HEADERS, json.dumps({"header": "X-Hub-Signature-256"}), "short-secret"),
            ["short-secret", GOOD],
        ),
    ],
)
def test_a_bad_row_is_refused_naming_the_column_without_echoing_it(
    db: Database, column: str, row: tuple, hidden: list
) -> None:
    exc = refused(db, row)
    assert exc.diag.sqlstate == "23514"
    assert exc.diag.column_name == column
    assert exc.diag.message_primary is not None and f"{column}:" in exc.diag.message_primary
    assert exc.diag.message_detail is None
    text = full_text(exc)
    for value in hidden + ["path-token", HEADER_VALUE]:
        assert value not in text, f"{value!r} shown in {text!r}"


def test_an_update_is_refused_the_same_way(db: Database) -> None:
    secret: Optional[str] = new_secret()
    with db.connect(autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tailhook.endpoints (name, url, secrets, headers) VALUES ('ok', %s, %s, %s::jsonb)",
            (URL, [secret], HEADERS),
        )
        with pytest.raises(errors.CheckViolation) as caught:
            conn.execute("UPDATE tailhook.endpoints SET secrets = ARRAY['your-secret-key-here'] WHERE name = 'ok'")
    exc = caught.value
    assert exc.diag.column_name == "secrets"
    text = full_text(exc)
    for value in ["your-secret-key-here", str(secret), "path-token", HEADER_VALUE]:
        assert value not in text, f"{value!r} shown in {text!r}"


def test_tailhook_secret_makes_a_secret_the_table_takes(db: Database) -> None:
    import subprocess

    from conftest import BINARY, binary_env

    made = subprocess.run([str(BINARY), "secret"], capture_output=True, text=True, env=binary_env(), check=True)
    secret = made.stdout.strip()
    assert secret.startswith("whsec_") and made.stdout.endswith("\n")
    with db.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO tailhook.endpoints (name, url, secrets) VALUES ('new', %s, %s)", (URL, [secret]))
