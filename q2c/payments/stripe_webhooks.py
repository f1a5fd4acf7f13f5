"""The Stripe webhook endpoint: `POST /stripe`, verified, stored once, answered at once.

`q2c webhooks serve` runs it on 127.0.0.1; in production a reverse proxy terminates TLS
and forwards the endpoint's public URL to it, body untouched. Each request is answered as
Stripe expects (https://docs.stripe.com/webhooks#acknowledge-events-immediately):

- 200 with `{"event": ..., "outcome": ...}` once the event is in the ops store
  (`applied`, `stale`, `ignored`, or `duplicate` for an event taken before);
- 400 with `{"error": reason}` for a missing or wrong signature, a timestamp outside the
  tolerance, a replayed request, or a body that is no Stripe event: Stripe shows the reason
  in the endpoint's delivery log and retries;
- 404, 405, 411 and 413 for a wrong path, method, a missing or too large body;
- 500 when the store cannot be written: Stripe retries later, and the event is taken once.

Nothing slow happens while Stripe waits: one SQLite transaction per event.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from q2c import opsdb
from q2c.payments.stripe_events import (
    EventRejected,
    ReplayedRequest,
    ensure_schema,
    parse_event,
    record_event,
)
from q2c.payments.stripe_signature import DEFAULT_TOLERANCE, SignatureRejected, verify

log = logging.getLogger(__name__)

PATH = "/stripe"
# Stripe's events stay far below this (its largest objects are a few hundred KB).
MAX_EVENT_BYTES = 1024 * 1024
REQUEST_TIMEOUT = 10.0


def make_webhook_server(
    ops_store: Path, secrets: Sequence[str], host: str = "127.0.0.1", port: int = 0,
    tolerance: int = DEFAULT_TOLERANCE, clock: Callable[[], float] = time.time,
    request_timeout: float = REQUEST_TIMEOUT,
) -> ThreadingHTTPServer:
    """An HTTP server taking Stripe events at `POST /stripe` into the ops store."""
    if not secrets:
        raise ValueError("the Stripe webhook endpoint needs at least one signing secret")
    with opsdb.connect(ops_store) as conn:
        ensure_schema(conn)

    class Handler(BaseHTTPRequestHandler):
        server_version = "q2c-stripe-webhooks"
        timeout = request_timeout  # a half-sent request frees its thread after this

        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            self._reply(405, {"error": f"Stripe events are taken by POST {PATH}"},
                        allow="POST")

        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            if self.path.split("?", 1)[0] != PATH:
                self._reply(404, {"error": f"Stripe events are taken at {PATH}"})
                return
            body = self._body()
            if body is None:
                return
            try:
                signed = verify(body, self.headers.get("Stripe-Signature"), secrets,
                                clock(), tolerance)
                event = parse_event(body)
            except (SignatureRejected, EventRejected) as exc:
                log.warning("stripe webhook refused: %s", exc)
                self._reply(400, {"error": str(exc)})
                return
            self._take(event, body, signed.replay_key, signed.timestamp)

        def _body(self) -> bytes | None:
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_EVENT_BYTES:
                self._reply(413 if length > 0 else 411,
                            {"error": f"send a Content-Length up to {MAX_EVENT_BYTES} bytes"})
                return None
            try:
                return self.rfile.read(length)
            except TimeoutError:
                log.warning("stripe webhook: body not sent within %s s; connection dropped",
                            request_timeout)
                self.close_connection = True
                return None

        def _take(self, event: dict, body: bytes, replay_key: str, signed_at: int) -> None:
            now = dt.datetime.fromtimestamp(clock(), dt.UTC)
            try:
                with opsdb.connect(ops_store) as conn:
                    outcome = record_event(conn, event, body, replay_key, signed_at, now,
                                           tolerance)
            except ReplayedRequest as exc:
                log.warning("stripe webhook refused: %s", exc)
                self._reply(400, {"error": str(exc)})
                return
            except sqlite3.Error as exc:
                log.error("stripe event %s not stored in %s (%s); Stripe will retry it",
                          event["id"], ops_store, exc)
                self._reply(500, {"error": "the event could not be stored; retry later"})
                return
            except Exception:
                # Answered, so Stripe retries; nothing was kept (the transaction rolled back).
                log.exception("stripe event %s (%s) could not be taken; Stripe will retry "
                              "it", event["id"], event["type"])
                self._reply(500, {"error": "the event could not be taken; retry later"})
                return
            if outcome.outcome == "duplicate":
                log.info("stripe event %s (%s): delivered again; taken before, nothing "
                         "changed", outcome.event_id, outcome.event_type)
            self._reply(200, {"event": outcome.event_id, "outcome": outcome.outcome,
                              "detail": outcome.detail})

        def _reply(self, status: int, payload: dict, allow: str | None = None) -> None:
            data = (json.dumps(payload) + "\n").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if allow:
                self.send_header("Allow", allow)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("stripe webhook endpoint: %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer,
                    poll_interval: float = 0.5) -> threading.Thread:
    """Serve in a daemon thread; `shutdown()` returns within `poll_interval` seconds."""
    thread = threading.Thread(target=server.serve_forever, name="stripe-webhooks",
                              kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    return thread
