"""Stripe webhook deliveries as Stripe makes them, for the tests of the endpoint.

Events are built from Stripe's published example objects (`fixtures3.json` of
github.com/stripe/openapi, in `../shared/data/stripe-openapi-fixtures`): the example `event`
envelope with an example object of the wanted type in `data.object`, changed where a test
needs it. Bodies are serialized the way Stripe sends them (indented JSON), and signed the
way Stripe documents it, written out here on its own rather than borrowed from q2c
(https://docs.stripe.com/webhooks#verify-manually): `Stripe-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256 of "<t>.<body>" under each signing secret>`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.client
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIXTURES = SHARED_DATA / "stripe-openapi-fixtures" / "fixtures3.json"
_RESOURCES: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]


def example(kind: str, **changes: Any) -> dict[str, Any]:
    """Stripe's published example of `kind` (a copy), with `changes` applied."""
    obj = copy.deepcopy(_RESOURCES[kind])
    obj.update(changes)
    return obj


def event(event_type: str, obj: dict[str, Any], event_id: str, created: int,
          livemode: bool = True) -> dict[str, Any]:
    """The published example event, carrying `obj`."""
    envelope = example("event")
    envelope.update(id=event_id, type=event_type, created=created, livemode=livemode,
                    api_version="2024-06-20")
    envelope["data"] = {"object": obj}
    return envelope


def body_of(envelope: dict[str, Any]) -> bytes:
    """The body as Stripe sends it: pretty-printed JSON, UTF-8."""
    return json.dumps(envelope, indent=2).encode("utf-8")


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """`t=...,v1=...`: one v1 per secret, as Stripe signs while a rolled secret lives on."""
    moment = int(time.time()) if timestamp is None else timestamp
    signed = f"{moment}.".encode() + body
    parts = [f"t={moment}"]
    for secret in secrets:
        parts.append("v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest())
    return ",".join(parts)


@dataclass(frozen=True)
class Answer:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def post(url: str, body: bytes, headers: dict[str, str] | None = None,
         path: str = "/stripe", method: str = "POST") -> Answer:
    """One real HTTP request to the endpoint, with the headers Stripe sends."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            **(headers or {}),
        })
        reply = conn.getresponse()
        data = reply.read()
    finally:
        conn.close()
    return Answer(reply.status, json.loads(data) if data else {}, dict(reply.getheaders()))


def deliver(url: str, envelope: dict[str, Any], secrets: Sequence[str],
            timestamp: int | None = None) -> Answer:
    """Sign and post one event, as one Stripe delivery attempt."""
    body = body_of(envelope)
    return post(url, body, {"Stripe-Signature": signature_header(body, secrets, timestamp)})
