"""Stripe's webhook signature: HMAC-SHA256 of `{t}.{raw body}` under the endpoint's secret.

Stripe sends `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>][,v0=<hex>]`, one `v1`
per signing secret in force on the endpoint: while a rolled secret is still honoured, two.
A request is genuine when one of its `v1` values equals the HMAC under one of the secrets
q2c holds (several may be configured, for the same rotation), and fresh when `t` lies within
the tolerance of this server's clock. Only `v1` is checked; `v0` is the legacy test-mode
scheme and is never trusted. The body is verified exactly as received: a proxy that
re-encodes JSON breaks the signature.

https://docs.stripe.com/webhooks#verify-manually
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SECRETS_VARIABLE = "Q2C_STRIPE_WEBHOOK_SECRETS"
DEFAULT_TOLERANCE = 300
SECRET_PREFIX = "whsec_"
# Longer than any header Stripe sends with two secrets in force; a bigger one is not parsed.
MAX_HEADER_CHARS = 2048
# A v1 signature is the hex of an HMAC-SHA256: 64 digits 0-9, a-f.
_V1 = re.compile(r"[0-9a-f]{64}")


class SignatureRejected(ValueError):
    """The request is not a genuine, fresh Stripe delivery; the message says why."""


class SecretsMissing(ValueError):
    """No usable signing secret is configured; the message says what to set."""


@dataclass(frozen=True)
class SignedRequest:
    """A verified delivery. `replay_key` is the same for the same signed request sent
    again: Stripe signs every delivery attempt anew, so only a copy repeats it."""

    timestamp: int
    replay_key: str


def secrets_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The signing secrets in `Q2C_STRIPE_WEBHOOK_SECRETS`, comma-separated.

    Raises:
        SecretsMissing: When none is set, or one is not a Stripe signing secret.
    """
    env = os.environ if env is None else env
    values = tuple(v.strip() for v in env.get(SECRETS_VARIABLE, "").split(",") if v.strip())
    if not values:
        raise SecretsMissing(
            f"{SECRETS_VARIABLE} is not set: copy the endpoint's signing secret (whsec_...) "
            "from Stripe (Developers > Webhooks > the endpoint > Signing secret) into it; "
            "while a rolled secret is still honoured, give both, comma-separated"
        )
    wrong = [n for n, value in enumerate(values, start=1) if not value.startswith(SECRET_PREFIX)]
    if wrong:
        raise SecretsMissing(
            f"{SECRETS_VARIABLE}: value(s) number {', '.join(map(str, wrong))} do not start "
            f"with {SECRET_PREFIX}, so they are not Stripe webhook signing secrets (an API "
            "key, sk_... or rk_..., does not sign webhooks); copy the endpoint's signing "
            "secret from Stripe"
        )
    garbled = [n for n, value in enumerate(values, start=1) if not value.isascii()]
    if garbled:
        raise SecretsMissing(
            f"{SECRETS_VARIABLE}: value(s) number {', '.join(map(str, garbled))} hold "
            "characters outside ASCII, which no Stripe signing secret has; copy the secret "
            "again"
        )
    return values


def parse_header(value: str | None) -> tuple[int, list[str]]:
    """The timestamp and the `v1` signatures of a `Stripe-Signature` header.

    Raises:
        SignatureRejected: When the header is missing or not of Stripe's form.
    """
    if not value:
        raise SignatureRejected("no Stripe-Signature header")
    if len(value) > MAX_HEADER_CHARS:
        raise SignatureRejected(f"the Stripe-Signature header is over {MAX_HEADER_CHARS} "
                                "characters")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        key, _, text = item.strip().partition("=")
        if key == "t":
            timestamps.append(text)
        elif key == "v1":
            signatures.append(text.lower())
    # isdigit() alone takes "²" and other Unicode digits, which int() refuses.
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()):
        raise SignatureRejected("the Stripe-Signature header has no single t=<unix seconds>")
    if not signatures:
        raise SignatureRejected("the Stripe-Signature header has no v1 signature")
    if not all(_V1.fullmatch(signature) for signature in signatures):
        raise SignatureRejected("a v1 signature of the Stripe-Signature header is not 64 hex "
                                "digits")
    return int(timestamps[0]), signatures


def expected_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 Stripe computes over `{t}.{body}` with `secret`."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: float,
           tolerance: int = DEFAULT_TOLERANCE) -> SignedRequest:
    """Check a delivery's signature, then its age.

    Raises:
        SignatureRejected: When no `v1` matches any secret, or `t` is more than `tolerance`
            seconds from `now` (either way: a clock ahead is as suspect as one behind).
    """
    timestamp, signatures = parse_header(header)
    expected = [expected_signature(secret, timestamp, body) for secret in secrets]
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise SignatureRejected(
            "no v1 signature matches the body under the configured signing secret(s): the "
            "request is not from Stripe, the body was changed on the way, or "
            f"{SECRETS_VARIABLE} does not hold this endpoint's secret"
        )
    drift = round(now - timestamp)
    if abs(drift) > tolerance:
        when = "old" if drift > 0 else "in the future"
        raise SignatureRejected(
            f"the signature's timestamp t={timestamp} is {abs(drift)} s {when}, beyond the "
            f"tolerance of {tolerance} s: a stale or replayed request (or this server's "
            "clock is wrong)"
        )
    replay_key = hashlib.sha256(str(timestamp).encode("ascii") + b"." + body).hexdigest()
    return SignedRequest(timestamp, replay_key)
