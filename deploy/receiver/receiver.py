#!/usr/bin/env python3
"""A webhook receiver that verifies Standard Webhooks signatures, using only
Python's standard library. It answers 204 to a request whose signature
verifies and 401 to any other, and prints one line per request.

Environment: WEBHOOK_SECRET (whsec_...), PORT (default 8000),
HOST (default 0.0.0.0), TOLERANCE_SECONDS (default 300).
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

SECRET = os.environ["WEBHOOK_SECRET"]
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
TOLERANCE = int(os.environ.get("TOLERANCE_SECONDS", "300"))
seen = set()
lock = threading.Lock()


def say(line):
    """One whole line per request, whichever thread prints it."""
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def verify(headers, body):
    """Why the request must be refused, or None when it verifies."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return "missing webhook-* headers"
    try:
        if abs(time.time() - int(timestamp)) > TOLERANCE:
            return "timestamp too far from now"
    except ValueError:
        return "timestamp is not a number"
    # Sign the raw bytes received, never re-serialised JSON.
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    # Several entries while secrets rotate; any one may match.
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return None
    return "no signature matches"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        problem = verify(self.headers, body)
        if problem:
            say(f"refused: {problem}")
            self.send_response(401)
        else:
            msg_id = self.headers["webhook-id"]
            event = json.loads(body)
            # At-least-once delivery: the same webhook-id may come again.
            with lock:
                repeat = " (duplicate)" if msg_id in seen else ""
                seen.add(msg_id)
            say(f"verified {msg_id} {event['type']}{repeat}")
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8000"))
    server = http.server.ThreadingHTTPServer((host, port), Handler)
    say(f"listening on {host}:{port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
