"""A local stand-in for Stripe Checkout: the API q2c's portal calls, and a hosted page.

`StripeApiServer` runs on 127.0.0.1 and speaks Stripe's wire format for what the portal
calls (https://docs.stripe.com/api/checkout/sessions):

- `POST /v1/checkout/sessions`: a form-encoded body in Stripe's bracket notation
  (`line_items[0][price_data][unit_amount]=...`), decoded into nested objects and checked
  as Stripe checks it (required parameters, integers, metadata limits, `expires_at` 30
  minutes to 24 hours ahead, three-decimal currencies in tens); the key in
  `Authorization: Bearer` (or Basic, as curl's `-u` sends it); `Idempotency-Key`: the same
  key with the same parameters replays the first answer (`Idempotent-Replayed: true`), with
  other parameters it is an `idempotency_error`, and a request refused while validating
  saves nothing (https://docs.stripe.com/api/idempotent_requests). The session comes from
  Stripe's published example object with a `cs_test_...` id (`cs_live_...` for a live
  key) and its `url` on this server.
- `GET /v1/checkout/sessions/{id}`: the session as it is now.
- `POST /v1/checkout/sessions/{id}/expire` (no parameters): an `open` session becomes
  `expired` and is answered whole; any other is refused with Stripe's 400 (`Only Checkout
  Sessions with a status in ["open"] can be expired. This Checkout Session has a status of
  `complete`.`), https://docs.stripe.com/api/checkout/sessions/expire. An expired session
  can no longer be paid (`complete` raises, the hosted page answers 409). Stripe then sends
  `checkout.session.expired`; it is kept in the session's `events` for a test to
  `deliver`. The `Idempotency-Key` rules are those of the create call.
- `GET /c/pay/{id}` and `POST /c/pay/{id}`: the hosted payment page a browser is sent to;
  its Pay button completes the session, delivers the events to the connected webhook
  endpoint and redirects to the session's `success_url`.

Errors are Stripe's JSON (`{"error": {"type", "code", "param", "message"}}`). A test
completes a session with `complete(id)`, which builds the events Stripe sends for a paid
Checkout Session (`charge.succeeded`, `payment_intent.succeeded`,
`checkout.session.completed`) from the published example objects, and `deliver(...)`
posts them signed as Stripe signs (tests/stripe_signing.py) to q2c's endpoint
(`q2c webhooks serve`). As Stripe does, the payment intent takes the session's
`payment_intent_data` and the charge copies the payment intent's metadata and description
(https://support.stripe.com/questions/how-metadata-works-with-related-objects).

`lose_replies(n)` makes the next n session POSTs be processed and then dropped without an
answer (a timeout on the wire), `fail(status, ...)` answers the next requests with an
error before processing them; every request is kept in `requests`.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from provider_servers import Fault, LoopbackServer, scripted_fault
from stripe_signing import Answer, deliver, event, example

TEST_KEY = "sk_test_51Q2cPortalCheckoutKey00abcd"
API_VERSION = "2024-06-20"
THREE_DECIMALS = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
ZERO_DECIMALS = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
                           "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})
_ALPHABET = string.ascii_letters + string.digits


def stripe_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class StripeError(Exception):
    """An answer in Stripe's error format."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"type": kind, "message": message}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param


@dataclass
class Seen:
    """One request: method, path, headers, the raw body and the decoded parameters."""

    method: str
    path: str
    headers: dict[str, str]
    raw: str
    params: dict[str, Any]


@dataclass
class Kept:
    """A session and what completing it needs (the payment intent data sent with it)."""

    session: dict[str, Any]
    payment_intent_data: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def decode_form(raw: str) -> dict[str, Any]:
    """Stripe's form encoding: `a[b][0][c]=v` is {"a": {"b": [{"c": "v"}]}}."""
    root: dict[str, Any] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw)):
        head, _, rest = name.partition("[")
        keys = [head] + ([part.rstrip("]") for part in rest.split("[")] if rest else [])
        node: Any = root
        for key, following in zip(keys, keys[1:] + [None], strict=True):
            slot = int(key) if isinstance(node, list) else key
            if following is None:
                _put(node, slot, value)
                break
            child = _get(node, slot)
            if child is None:
                child = [] if following.isdigit() else {}
                _put(node, slot, child)
            node = child
    return root


def _get(node: Any, slot: Any) -> Any:
    if isinstance(node, list):
        return node[slot] if slot < len(node) else None
    return node.get(slot)


def _put(node: Any, slot: Any, value: Any) -> None:
    if isinstance(node, list):
        while len(node) <= slot:
            node.append(None)
    node[slot] = value


class StripeApiServer(LoopbackServer):
    """Stripe's Checkout Sessions API and hosted page on a loopback port."""

    methods = ("GET", "POST")

    def __init__(self, key: str = TEST_KEY) -> None:
        super().__init__()
        self.key = key
        self.lock = threading.RLock()
        self.requests: list[Seen] = []
        self.sessions: dict[str, Kept] = {}
        self.faults: list[Fault] = []
        self._idempotent: dict[str, tuple[str, dict[str, Any], int, dict[str, Any], str]] = {}
        self._lost_replies = 0
        self.webhook_url: str | None = None
        self.webhook_secrets: tuple[str, ...] = ()
        # Where session URLs point: this server's hosted page unless a test says otherwise.
        self.checkout_url_base: str | None = None
        # The moment payments happen (unix seconds): now, unless a test pins it.
        self.clock: Callable[[], int] = lambda: int(time.time())

    @property
    def livemode(self) -> bool:
        return self.key.startswith("sk_live_")

    @property
    def env(self) -> dict[str, str]:
        """The settings that point q2c at this server."""
        return {"Q2C_STRIPE_API_KEY": self.key, "Q2C_STRIPE_URL": self.url,
                "Q2C_STRIPE_VERSION": API_VERSION}

    def connect_webhooks(self, url: str, signing_secrets: tuple[str, ...]) -> None:
        """Where the hosted page's Pay button delivers the events (q2c's endpoint)."""
        self.webhook_url, self.webhook_secrets = url, tuple(signing_secrets)

    def fail(self, status: int, match: str = "/v1/checkout/sessions", times: int = 1,
             headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` matching requests with `status`, unprocessed."""
        body = StripeError(status, "An unknown error occurred", "api_error").body
        self.faults.append(Fault(status, body, headers or {}, match, 0, times))

    def lose_replies(self, times: int = 1) -> None:
        """Process the next `times` session POSTs, then close without answering."""
        self._lost_replies += times

    def created(self) -> list[dict[str, Any]]:
        """The sessions made, oldest first."""
        return [kept.session for kept in self.sessions.values()]

    # -----------------------------------------------------------------------------------
    # Requests

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8") if length else ""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if parts.path.startswith("/c/pay/"):
            self._hosted_page(handler, method, parts.path.removeprefix("/c/pay/"))
            return
        seen = Seen(method, parts.path, headers, raw, {})
        lose = False
        with self.lock:
            self.requests.append(seen)
            try:
                status, payload, extra = self._answer(seen, parts.query)
            except StripeError as exc:
                status, payload, extra = exc.status, exc.body, {}
            if (method == "POST" and self._lost_replies and status < 300
                    and "idempotent-replayed" not in extra):
                self._lost_replies -= 1
                lose = True
        if lose:
            handler.close_connection = True
            return
        self._send_json(handler, status, payload, {
            "Request-Id": stripe_id("req_", 14), "Stripe-Version": API_VERSION, **extra})

    def _answer(self, seen: Seen, query: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = scripted_fault(self.faults, seen.path)
        if fault is not None:
            return fault.status, fault.body, dict(fault.headers)
        self._authenticate(seen.headers.get("authorization"))
        if seen.method == "POST" and seen.path == "/v1/checkout/sessions":
            return self._post(seen, self._create)
        prefix = "/v1/checkout/sessions/"
        if seen.method == "POST" and seen.path.startswith(prefix) and seen.path.endswith(
                "/expire"):
            session_id = seen.path.removeprefix(prefix).removesuffix("/expire")
            return self._post(seen, lambda params: self._expire(session_id, params))
        if seen.method == "GET" and seen.path.startswith(prefix):
            return 200, self._kept(seen.path.removeprefix(prefix)).session, {}
        raise StripeError(404, f"Unrecognized request URL ({seen.method}: {seen.path}). "
                               "Please see https://stripe.com/docs or we can help at "
                               "https://support.stripe.com/.")

    def _authenticate(self, header: str | None) -> None:
        if not header:
            raise StripeError(401, "You did not provide an API key. You need to provide "
                                   "your API key in the Authorization header, using Bearer "
                                   "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value).decode().split(":", 1)[0]
            except ValueError:
                value = ""
        elif scheme.lower() != "bearer":
            value = ""
        if value != self.key:
            shown = f"{value[:8]}{'*' * max(len(value) - 12, 0)}{value[-4:]}" if value else ""
            raise StripeError(401, f"Invalid API Key provided: {shown}")

    def _kept(self, session_id: str) -> Kept:
        kept = self.sessions.get(session_id)
        if kept is None or "/" in session_id:
            raise StripeError(404, f"No such checkout.session: '{session_id}'",
                              code="resource_missing", param="session")
        return kept

    def _post(self, seen: Seen, make: Callable[[dict[str, Any]], dict[str, Any]]
              ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A POST: its form decoded, its `Idempotency-Key` honoured, `make(params)` run."""
        content_type = seen.headers.get("content-type", "")
        if seen.raw and not content_type.startswith("application/x-www-form-urlencoded"):
            raise StripeError(400, "Invalid request (check that your POST content type is "
                                   "application/x-www-form-urlencoded). If you have any "
                                   "questions, we can help at https://support.stripe.com/.")
        try:
            params = decode_form(seen.raw)
        except ValueError as exc:
            raise StripeError(400, f"Invalid request body ({exc})") from None
        seen.params = params
        key = seen.headers.get("idempotency-key")
        if key is not None:
            if len(key) > 255:
                raise StripeError(400, "Idempotency keys are limited to 255 characters",
                                  "idempotency_error")
            saved = self._idempotent.get(key)
            if saved is not None:
                path, first, status, body, request_id = saved
                if path != seen.path or first != params:
                    raise StripeError(
                        400, "Keys for idempotent requests can only be used with the same "
                             "parameters they were first used with. Try using a key other "
                             f"than '{key}' if you meant to execute a different request.",
                        "idempotency_error")
                return status, body, {"Idempotent-Replayed": "true",
                                      "Original-Request": request_id,
                                      "Idempotency-Key": key}
        answer = make(params)
        extra: dict[str, str] = {}
        if key is not None:
            self._idempotent[key] = (seen.path, params, 200, answer, stripe_id("req_", 14))
            extra["Idempotency-Key"] = key
        return 200, answer, extra

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        kept = self._new_session(params)
        self.sessions[kept.session["id"]] = kept
        return kept.session

    def _expire(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """`POST .../expire`: only an open session expires; Stripe then sends the event."""
        kept = self._kept(session_id)
        if params:
            name = next(iter(params))
            raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        status = kept.session["status"]
        if status != "open":
            raise StripeError(400, 'Only Checkout Sessions with a status in ["open"] can be '
                                   f"expired. This Checkout Session has a status of `{status}`.")
        kept.events += self.expire(session_id)
        return dict(kept.session)

    def _new_session(self, params: dict[str, Any]) -> Kept:
        """A session from the published example, after Stripe's checks of `params`."""
        if params.get("mode") not in ("payment", "setup", "subscription"):
            raise StripeError(400, "Missing required param: mode.", code="parameter_missing",
                              param="mode")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "Missing required param: line_items.",
                              code="parameter_missing", param="line_items")
        currency, total = None, 0
        for n, item in enumerate(items):
            amount, item_currency, quantity = _line(item, n)
            if currency not in (None, item_currency):
                raise StripeError(400, "All line items must use the same currency.",
                                  param=f"line_items[{n}][price_data][currency]")
            currency, total = item_currency, total + amount * quantity
        if currency in THREE_DECIMALS and total % 10:
            raise StripeError(400, f"Invalid amount: {total}. Amounts in {currency} must end "
                                   "in 0; see https://stripe.com/docs/currencies#three-decimal",
                              code="amount_invalid", param="line_items")
        for name in ("success_url", "cancel_url"):
            url = params.get(name)
            if name == "success_url" and url is None:
                raise StripeError(400, "Missing required param: success_url.",
                                  code="parameter_missing", param=name)
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise StripeError(400, "Not a valid URL", code="url_invalid", param=name)
        now = int(time.time())
        expires_at = _integer(params.get("expires_at", str(now + 86400)), "expires_at")
        if not now + 1800 <= expires_at <= now + 86400:
            raise StripeError(400, "The `expires_at` timestamp must be between 30 minutes "
                                   "and 24 hours after the Checkout Session is created.",
                              param="expires_at")
        metadata = _metadata(params.get("metadata"), "metadata")
        intent_data = params.get("payment_intent_data") or {}
        if not isinstance(intent_data, dict):
            raise StripeError(400, "Invalid object", param="payment_intent_data")
        intent_data["metadata"] = _metadata(intent_data.get("metadata"),
                                            "payment_intent_data[metadata]")
        reference = params.get("client_reference_id")
        if reference is not None and not 1 <= len(reference) <= 200:
            raise StripeError(400, "client_reference_id must be 1 to 200 characters",
                              param="client_reference_id")

        prefix = "cs_live_" if self.livemode else "cs_test_"
        session_id = stripe_id(prefix, 58)
        base = self.checkout_url_base or f"{self.url}/c/pay/"
        session = example(
            "checkout.session", id=session_id, url=f"{base}{session_id}",
            mode=params["mode"], currency=currency, amount_subtotal=total,
            amount_total=total, client_reference_id=reference,
            customer_email=params.get("customer_email"), customer=None,
            customer_details=None, metadata=metadata, payment_intent=None,
            payment_status="unpaid", status="open", success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"), created=now, expires_at=expires_at,
            livemode=self.livemode, locale=params.get("locale"), invoice=None,
            shipping_cost=None, shipping_address_collection=None, currency_conversion=None,
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        )
        return Kept(session, intent_data)

    # -----------------------------------------------------------------------------------
    # Completing a session, as a customer paying on the hosted page

    def complete(self, session_id: str, at: int | None = None) -> list[dict[str, Any]]:
        """Pay the session: it becomes complete and paid; returns the events Stripe sends,
        in the order it sends them."""
        moment = self.clock() if at is None else at
        with self.lock:
            kept = self.sessions[session_id]
            session = kept.session
            if session["status"] != "open":
                raise ValueError(f"session {session_id} is {session['status']}, not open")
            intent_id, charge_id = stripe_id("pi_"), stripe_id("ch_")
            amount, currency = session["amount_total"], session["currency"]
            metadata = dict(kept.payment_intent_data.get("metadata") or {})
            description = kept.payment_intent_data.get("description")
            email = session.get("customer_email") or "payer@example.com"
            intent = example(
                "payment_intent", id=intent_id, amount=amount, amount_received=amount,
                amount_capturable=0, currency=currency, status="succeeded",
                metadata=metadata, description=description, latest_charge=charge_id,
                created=moment, livemode=self.livemode, customer=None, canceled_at=None,
                last_payment_error=None, next_action=None, processing=None,
                payment_method_types=["card"])
            charge = example(
                "charge", id=charge_id, amount=amount, amount_captured=amount,
                amount_refunded=0, currency=currency, status="succeeded", paid=True,
                captured=True, refunded=False, payment_intent=intent_id, metadata=metadata,
                description=description, created=moment, livemode=self.livemode,
                customer=None, balance_transaction=None, receipt_email=email,
                refunds={"object": "list", "data": [], "has_more": False,
                         "url": f"/v1/charges/{charge_id}/refunds"})
            session.update(status="complete", payment_status="paid",
                           payment_intent=intent_id,
                           customer_details={"email": email, "name": None, "phone": None,
                                             "address": None, "tax_exempt": "none",
                                             "tax_ids": []})
            kept.events = [
                event("charge.succeeded", charge, stripe_id("evt_"), moment, self.livemode),
                event("payment_intent.succeeded", intent, stripe_id("evt_"), moment,
                      self.livemode),
                event("checkout.session.completed", dict(session), stripe_id("evt_"),
                      moment, self.livemode),
            ]
            return list(kept.events)

    def expire(self, session_id: str, at: int | None = None) -> list[dict[str, Any]]:
        """Let the session expire unpaid; returns `checkout.session.expired`. Its `url` goes
        (Stripe gives it only while the session is active)."""
        moment = self.clock() if at is None else at
        with self.lock:
            session = self.sessions[session_id].session
            session.update(status="expired", url=None)
            return [event("checkout.session.expired", dict(session), stripe_id("evt_"),
                          moment, self.livemode)]

    def deliver(self, events: list[dict[str, Any]], url: str | None = None,
                signing_secrets: tuple[str, ...] | None = None) -> list[Answer]:
        """Post each event, signed, to the webhook endpoint; the endpoint's answers."""
        target = url or self.webhook_url
        keys = signing_secrets or self.webhook_secrets
        if not target or not keys:
            raise ValueError("no webhook endpoint: call connect_webhooks(url, secrets)")
        return [deliver(target, envelope, list(keys)) for envelope in events]

    def pay(self, session_id: str) -> list[Answer]:
        """Complete the session and deliver its events to the connected endpoint."""
        return self.deliver(self.complete(session_id))

    def _hosted_page(self, handler: BaseHTTPRequestHandler, method: str,
                     session_id: str) -> None:
        kept = self.sessions.get(session_id)
        if kept is None:
            self._send_html(handler, 404, "<h1>This payment page does not exist</h1>")
            return
        session = kept.session
        if method == "POST":
            if session["status"] != "open":
                self._send_html(handler, 409, f"<h1>This session is {session['status']}</h1>")
                return
            answers = self.pay(session_id)
            if any(answer.status != 200 for answer in answers):
                self._send_html(handler, 502, "<h1>The webhook endpoint refused the events"
                                              "</h1>")
                return
            target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
            handler.send_response(303)
            handler.send_header("Location", target)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        amount = _major(session["amount_total"], session["currency"])
        body = (f"<h1>Pay {html.escape(amount)} {session['currency'].upper()}</h1>"
                f"<form method='post'><button type='submit'>Pay</button></form>"
                f"<p><a href='{html.escape(session.get('cancel_url') or '/')}'>Cancel</a></p>")
        self._send_html(handler, 200, body)

    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any,
                   headers: dict[str, str]) -> None:
        data = json.dumps(payload, indent=2).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _send_html(handler: BaseHTTPRequestHandler, status: int, body: str) -> None:
        data = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>Stripe Checkout (local)</title></head><body><main>{body}</main>"
                "</body></html>").encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _line(item: Any, n: int) -> tuple[int, str, int]:
    where = f"line_items[{n}]"
    if not isinstance(item, dict):
        raise StripeError(400, "Invalid array", param="line_items")
    price = item.get("price_data")
    if not isinstance(price, dict):
        raise StripeError(400, f"You must specify either `price` or `price_data` in "
                               f"{where}.", param=where)
    currency = price.get("currency")
    if not currency or currency != currency.lower() or len(currency) != 3:
        raise StripeError(400, f"Invalid currency: {currency}. Stripe currently supports "
                               "these currencies: usd, eur, jpy, kwd, ... (lower case)",
                          param=f"{where}[price_data][currency]")
    product = price.get("product_data")
    if not isinstance(product, dict) or not product.get("name"):
        raise StripeError(400, f"Missing required param: {where}[price_data][product_data]"
                               "[name].", code="parameter_missing",
                          param=f"{where}[price_data][product_data][name]")
    amount = _integer(price.get("unit_amount"), f"{where}[price_data][unit_amount]")
    quantity = _integer(item.get("quantity"), f"{where}[quantity]")
    if amount < 0 or quantity < 1:
        raise StripeError(400, "This value must be greater than or equal to 1.",
                          param=f"{where}[quantity]" if quantity < 1 else
                          f"{where}[price_data][unit_amount]")
    return amount, currency, quantity


def _integer(value: Any, param: str) -> int:
    if value is None:
        raise StripeError(400, f"Missing required param: {param}.", code="parameter_missing",
                          param=param)
    if not isinstance(value, str) or not value.lstrip("-").isdigit():
        raise StripeError(400, f"Invalid integer: {value}", param=param)
    return int(value)


def _metadata(value: Any, param: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid hash", param=param)
    if len(value) > 50:
        raise StripeError(400, "You can specify up to 50 keys in metadata.", param=param)
    for key, item in value.items():
        if len(key) > 40:
            raise StripeError(400, f"Metadata keys can have up to 40 characters: {key}",
                              param=f"{param}[{key}]")
        if not isinstance(item, str) or len(item) > 500:
            raise StripeError(400, "Metadata values can have up to 500 characters.",
                              param=f"{param}[{key}]")
    return dict(value)


def _major(amount: int, currency: str) -> str:
    exponent = 0 if currency in ZERO_DECIMALS else 3 if currency in THREE_DECIMALS else 2
    text = str(amount).rjust(exponent + 1, "0")
    return f"{text[:-exponent]}.{text[-exponent:]}" if exponent else text
