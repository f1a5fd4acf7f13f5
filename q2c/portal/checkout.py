"""Paying an invoice in the portal: one Stripe Checkout Session per payment attempt.

The amount is what q2c says is open on the invoice (its balance in the warehouse, read
through the customer-scoped view, less confirmed portal payments the nightly has not booked
yet: `confirmed_payments`, `q2c.portal.pending`), never a figure from the browser. Each
attempt is a row of `portal_checkout_attempts` in the ops store, written before Stripe is
called, with its own `Idempotency-Key` and the exact form body sent: when the call fails
half-way (a timeout, a dropped connection), the next click re-sends the same body under the
same key, and Stripe answers with the session it made the first time instead of a second
one (https://docs.stripe.com/api/idempotent_requests). A click while an attempt's session is
still open for the same amount goes back to that session.

The session carries the invoice id as `client_reference_id` and the q2c keys in its
metadata and its payment intent's metadata (Checkout copies neither onto the other), so
the webhook landing (`q2c.payments.stripe_landing.portal_overlays`) and the Stripe adapter
find the invoice a payment settles. A redirect back to the success URL proves nothing:
the invoice counts as paid only once a signed `checkout.session.completed` webhook has
stored the session complete and paid (`payment_state`), and the nightly allocates the
charge to the invoice from there.

One invoice has at most one session that can take a payment: a click goes back to the
account's open attempt for the same amount whoever clicks (the account's session or a
per-invoice link's), and every other open session of the invoice is expired at Stripe
(`POST /v1/checkout/sessions/{id}/expire`, `expire_open_sessions`) when a new one is
made, once a payment of the invoice is confirmed (`expire_stale_sessions`: sessions made
before it asked for an amount that did not know of it), and when the invoice is disputed.
A session can still complete in the moment before it is expired; such a second payment is
confirmed like any other, and its `PAYMENT_CONFIRMED` event says `"overpayment": true`
with the sessions that paid the invoice before (`confirm_payments`), and a warning names
the invoice for finance. The nightly allocates the first charge to the invoice; the second
finds nothing open under the invoice number it names and stays unapplied in
`core.mart_unallocated_cash` (reason `exceeds_referenced_invoices`), where finance
refunds it or applies it elsewhere.

Every lookup of attempts is by account and invoice id together: an invoice id is unique
only within its ERP, and two ERPs may give two customers' invoices the same id.

Stripe writes amounts in the currency's minor units with the exponent its API uses: the
ISO 4217 one (q2c.money) except ISK (two decimals in the API) and MGA (none), the same
exceptions the warehouse reads Stripe amounts with (stg_stripe__currency_units). Stripe
takes three-decimal currencies (KWD, BHD, ...) only in multiples of ten minor units
(https://docs.stripe.com/currencies#three-decimal): such an amount is charged rounded down
to ten, so a customer is never charged more than is open.

Settings are the Stripe connector's: Q2C_STRIPE_API_KEY (a secret key, or a restricted key
that may write Checkout Sessions), Q2C_STRIPE_URL and Q2C_STRIPE_VERSION.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from q2c import opsdb
from q2c.money import Money, UnknownCurrencyError, minor_units
from q2c.payments.stripe_events import CHECKOUT_SESSION
from q2c.payments.stripe_events import ensure_schema as ensure_stripe_schema
from q2c.portal.events import PAYMENT_CONFIRMED, PAYMENT_STARTED, ensure_events, record_event
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.errors import ConfigurationError

log = logging.getLogger(__name__)

ATTEMPTS_TABLE = "portal_checkout_attempts"
SESSIONS_PATH = "/v1/checkout/sessions"
STRIPE_API = "https://api.stripe.com"
STRIPE_CHECKOUT = "https://checkout.stripe.com"
DEFAULT_STRIPE_VERSION = "2024-06-20"  # the version the webhook endpoint is set to
# How long a session stays payable (Stripe allows 30 minutes to 24 hours). Short, because
# tonight's run may change what is open; a later click starts a new attempt.
SESSION_LIFETIME = dt.timedelta(hours=1)
# An open session is offered again only while it has at least this long to live.
REUSE_MARGIN = dt.timedelta(minutes=10)
# A pending attempt (its POST got no answer) is sent again under its key only while the
# `expires_at` in its body is still more than the 30 minutes ahead Stripe asks for.
PENDING_RETRY_WINDOW = dt.timedelta(minutes=20)
# How long a payment Stripe confirmed may still be missing from the warehouse's balance
# (the nightly books it); within it, the same amount is not taken a second time.
BOOKING_WINDOW = dt.timedelta(days=2)
# Exponents where Stripe's API differs from ISO 4217 (docs.stripe.com/currencies#special-cases).
STRIPE_EXPONENTS = {"ISK": 2, "MGA": 0}
# Locales Stripe Checkout shows (the `locale` parameter); others get `auto`.
CHECKOUT_LOCALES = frozenset(
    "bg cs da de el en es et fi fil fr hr hu id it ja ko lt lv ms mt nb nl pl pt ro ru sk "
    "sl sv th tr vi zh".split()
)

# Attempt statuses: `pending` (written, no session recorded yet), `open` (a session was
# made), `failed` (Stripe refused the request; the key is not used again), `closed` (q2c
# expired its session at Stripe; `error` says why: paid through another session, disputed,
# replaced by a newer attempt).
PENDING, OPEN, FAILED, CLOSED = "pending", "open", "failed", "closed"

# What became of a payment, as the portal shows it.
AWAITING = "awaiting"  # no signed webhook yet: "payment received, confirmation pending"
PAID = "paid"  # the signed webhook stored the session complete and paid
PROCESSING = "processing"  # complete, but the payment method settles later
EXPIRED = "expired"  # the session expired unpaid

ATTEMPTS_DDL = f"""
create table if not exists {ATTEMPTS_TABLE} (
    attempt_id text primary key,
    idempotency_key text not null unique,
    invoice_id text not null,
    invoice_number text not null,
    account_key text not null,
    actor text not null,
    currency text not null,
    amount text not null,
    amount_minor integer not null,
    request_body text not null,
    status text not null,
    session_id text unique,
    session_url text,
    session_expires_at integer,
    error text,
    created_at text not null,
    updated_at text not null,
    confirmed_at text
);
create index if not exists {ATTEMPTS_TABLE}_invoice
    on {ATTEMPTS_TABLE} (invoice_id, created_at);
"""


class CheckoutRefused(ValueError):
    """The invoice cannot be paid now; `reason` says why, for the page to explain.

    Reasons: `nothing_due`, `disputed`, `not_payable` (an amount Stripe cannot take),
    `being_booked` (a confirmed payment of this amount waits for tonight's run).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CheckoutUnavailable(RuntimeError):
    """Stripe could not be asked (settings missing, Stripe down or refusing); the message
    says what to fix and is for the log, not the customer."""


@dataclass(frozen=True)
class PayableInvoice:
    """What q2c says is open on one invoice, as the customer-scoped view read it.

    `received` is what confirmed portal payments not booked yet come to, already taken
    off `open_amount` (`q2c.portal.pending`); None when the caller did not look, and then
    a confirmed payment of exactly the open amount is refused as `being_booked`.
    """

    invoice_id: str
    invoice_number: str
    account_key: str
    currency: str
    open_amount: Decimal
    disputed: bool = False
    received: Decimal | None = None


@dataclass(frozen=True)
class Charge:
    """The amount one attempt asks Stripe for."""

    money: Money
    minor: int

    @property
    def stripe_currency(self) -> str:
        return self.money.currency.lower()


@dataclass(frozen=True)
class CheckoutStart:
    """Where to send the customer: the Checkout Session of the attempt."""

    attempt_id: str
    session_id: str
    url: str
    charge: Charge
    reused: bool


@dataclass(frozen=True)
class Attempt:
    """One row of `portal_checkout_attempts`."""

    attempt_id: str
    idempotency_key: str
    invoice_id: str
    invoice_number: str
    account_key: str
    actor: str
    currency: str
    amount: Decimal
    amount_minor: int
    request_body: str
    status: str
    session_id: str | None
    session_url: str | None
    session_expires_at: int | None
    error: str | None
    created_at: dt.datetime
    confirmed_at: dt.datetime | None


def ensure_schema(conn: sqlite3.Connection) -> None:
    """The attempts table, the portal events and Stripe's webhook tables (read here)."""
    opsdb.ensure_schema(conn, ATTEMPTS_DDL)
    ensure_events(conn)
    ensure_stripe_schema(conn)


# ---------------------------------------------------------------------------------------
# Amounts


def stripe_exponent(currency: str) -> int:
    """The number of decimals Stripe's API writes `currency` amounts with."""
    code = currency.strip().upper()
    return STRIPE_EXPONENTS.get(code, minor_units(code))


def charge_for(invoice: PayableInvoice) -> Charge:
    """The amount to ask Stripe for: the invoice's open balance in Stripe's minor units.

    Raises:
        CheckoutRefused: Nothing is open, the invoice is disputed, or its currency or
            amount is one Stripe cannot be asked for.
    """
    where = f"invoice {invoice.invoice_number} ({invoice.invoice_id})"
    if invoice.disputed:
        raise CheckoutRefused("disputed", f"{where} is in dispute; it is paid once the "
                                          "dispute is resolved")
    try:
        exponent = stripe_exponent(invoice.currency)
    except UnknownCurrencyError as exc:
        raise CheckoutRefused("not_payable", f"{where}: {exc}") from exc
    amount = Decimal(invoice.open_amount)
    if amount <= 0 and invoice.received:
        raise CheckoutRefused(
            "being_booked", f"{where}: confirmed portal payments of {invoice.received} "
            f"{invoice.currency} cover what is open; the next nightly run books them")
    if amount <= 0:
        raise CheckoutRefused("nothing_due", f"{where} has nothing open "
                                             f"({amount} {invoice.currency})")
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise CheckoutRefused(
            "not_payable", f"{where}: the open balance {amount} {invoice.currency} has more "
            f"decimals than Stripe takes ({exponent}); correct the invoice in the ERP")
    minor = int(scaled)
    if exponent == 3:
        minor -= minor % 10
    if minor <= 0:
        raise CheckoutRefused("nothing_due", f"{where}: {amount} {invoice.currency} is less "
                                             "than Stripe can charge")
    money = Money(Decimal(minor).scaleb(-exponent), invoice.currency)
    if minor != int(amount.scaleb(exponent)):
        log.info("%s: %s %s open, %s charged (Stripe takes %s only in tens of minor units)",
                 where, amount, money.currency, money.amount, money.currency)
    return Charge(money, minor)


# ---------------------------------------------------------------------------------------
# Stripe's API


@dataclass(frozen=True)
class StripeApi:
    """Where Stripe's API is and the key q2c calls it with.

    Attributes:
        checkout_origin: The only origin a session's `url` may point to: Stripe's hosted
            Checkout for Stripe's API; the API's own origin for a stand-in on another host
            (a local test server).
    """

    base_url: str
    secret_key: str = field(repr=False)
    version: str = DEFAULT_STRIPE_VERSION
    timeout: tuple[float, float] = (5.0, 20.0)
    attempts: int = 3
    backoff: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StripeApi:
        """The Stripe connector's settings: Q2C_STRIPE_API_KEY, Q2C_STRIPE_URL,
        Q2C_STRIPE_VERSION.

        Raises:
            CheckoutUnavailable: The key is not set or malformed (the message names the
                variable, never the value).
        """
        try:
            values = read_env("Stripe", {
                "key": EnvValue("Q2C_STRIPE_API_KEY", what="a secret key, or a restricted "
                                "key with write access to Checkout Sessions", secret=True),
                "url": EnvValue("Q2C_STRIPE_URL", STRIPE_API),
                "version": EnvValue("Q2C_STRIPE_VERSION", DEFAULT_STRIPE_VERSION),
            }, env)
        except ConfigurationError as exc:
            raise CheckoutUnavailable(f"portal payments: {exc}") from None
        return cls(values["url"].rstrip("/"), values["key"], values["version"])

    @property
    def checkout_origin(self) -> str:
        return checkout_origin(self.base_url)

    @property
    def livemode(self) -> bool:
        return self.secret_key.startswith(("sk_live_", "rk_live_"))


def checkout_origin(api_url: str) -> str:
    """Where Checkout pages of the API at `api_url` are: Stripe's hosted Checkout for
    Stripe's API, the API's own origin for a stand-in elsewhere."""
    parts = urlsplit(api_url)
    if parts.hostname == "api.stripe.com":
        return STRIPE_CHECKOUT
    return f"{parts.scheme}://{parts.netloc}"


def checkout_url_prefix(env: Mapping[str, str] | None = None) -> str:
    """The prefix every Checkout URL the portal redirects to starts with (Q2C_STRIPE_URL)."""
    values = read_env("Stripe", {"url": EnvValue("Q2C_STRIPE_URL", STRIPE_API)}, env)
    return checkout_origin(values["url"]) + "/"


class StripeRequestError(RuntimeError):
    """Stripe refused or could not take a request. `transient` is true when the same
    request (same key) may succeed later."""

    def __init__(self, message: str, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class StripeClient:
    """The calls the portal makes: create, retrieve and expire a Checkout Session.

    A dropped connection, a 409 (the same key still in flight), a 429 or a 5xx is retried
    with the same body and key, a few times within one page request; Stripe's
    `Stripe-Should-Retry` header decides when it is given. Messages never carry the key.
    """

    def __init__(self, api: StripeApi, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.http = session or requests.Session()
        self.sleep = sleep

    def create_session(self, body: str, idempotency_key: str) -> dict[str, Any]:
        return self._call("POST", SESSIONS_PATH, body, idempotency_key)

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"{SESSIONS_PATH}/{quote(session_id, safe='')}")

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session (https://docs.stripe.com/api/checkout/sessions/expire):
        Stripe answers with the session, now `expired`, and refuses (400) one that is not
        open any more. The key makes a retry after a lost answer get the first answer."""
        return self._call("POST", f"{SESSIONS_PATH}/{quote(session_id, safe='')}/expire",
                          "", f"q2c-portal-expire-{session_id}")

    def _call(self, method: str, path: str, body: str | None = None,
              idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api.secret_key}",
                   "Stripe-Version": self.api.version}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        where = f"Stripe {method} {path.split('/cs_', 1)[0]}"
        for attempt in range(1, self.api.attempts + 1):
            try:
                reply = self.http.request(method, self.api.base_url + path, data=body,
                                          headers=headers, timeout=self.api.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = StripeRequestError(f"{where}: no answer ({type(exc).__name__})",
                                           None, transient=True)
            except requests.RequestException as exc:
                raise StripeRequestError(f"{where} could not be sent ({type(exc).__name__}); "
                                         "check Q2C_STRIPE_URL", None, False) from None
            else:
                if reply.status_code < 300:
                    return self._json(reply, where)
                error = self._error(reply, where)
            if not error.transient or attempt == self.api.attempts:
                raise error
            wait = self.api.backoff * 2 ** (attempt - 1)
            log.warning("%s; retrying in %.1f s with the same idempotency key (attempt %d "
                        "of %d)", error, wait, attempt + 1, self.api.attempts)
            self.sleep(wait * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def _json(self, reply: requests.Response, where: str) -> dict[str, Any]:
        try:
            data = reply.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise StripeRequestError(f"{where} answered HTTP {reply.status_code} without a "
                                     "JSON object; check that Q2C_STRIPE_URL is Stripe's API",
                                     reply.status_code, False)
        return data

    def _error(self, reply: requests.Response, where: str) -> StripeRequestError:
        status = reply.status_code
        try:
            error = reply.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        kind = "/".join(str(error[k]) for k in ("type", "code") if error.get(k))
        text = self._masked(str(error.get("message") or reply.text[:300] or "no error text"))
        hint = ""
        if status == 401:
            hint = "; set Q2C_STRIPE_API_KEY to the account's secret key"
        elif status == 403:
            hint = ("; the key in Q2C_STRIPE_API_KEY may not write Checkout Sessions: use the "
                    "secret key or give the restricted key that permission")
        should_retry = reply.headers.get("Stripe-Should-Retry")
        transient = (should_retry == "true" if should_retry in ("true", "false")
                     else status in (409, 429) or status >= 500)
        return StripeRequestError(f"{where} answered HTTP {status} ({kind or 'error'}): "
                                  f"{text}{hint}", status, transient)

    def _masked(self, text: str) -> str:
        return text.replace(self.api.secret_key, "***") if self.api.secret_key else text


# ---------------------------------------------------------------------------------------
# Attempts


def session_form(invoice: PayableInvoice, charge: Charge, *, attempt_id: str,
                 success_url: str, cancel_url: str, customer_email: str | None,
                 item_name: str | None, language: str | None,
                 expires_at: int) -> str:
    """The form body of `POST /v1/checkout/sessions`, in Stripe's bracket notation."""
    metadata = {
        "q2c_invoice_number": invoice.invoice_number,
        "q2c_invoice_id": invoice.invoice_id,
        "q2c_account_key": invoice.account_key,
        "q2c_channel": "portal",
        "q2c_checkout_attempt": attempt_id,
    }
    item = "line_items[0]"
    pairs: list[tuple[str, str]] = [
        ("mode", "payment"),
        (f"{item}[price_data][currency]", charge.stripe_currency),
        (f"{item}[price_data][unit_amount]", str(charge.minor)),
        (f"{item}[price_data][product_data][name]", item_name or invoice.invoice_number),
        (f"{item}[quantity]", "1"),
        ("client_reference_id", invoice.invoice_id),
        ("success_url", success_url),
        ("cancel_url", cancel_url),
        ("expires_at", str(expires_at)),
        ("payment_intent_data[description]",
         f"q2c portal payment of invoice {invoice.invoice_number}"),
    ]
    pairs += [(f"metadata[{k}]", v) for k, v in metadata.items()]
    pairs += [(f"payment_intent_data[metadata][{k}]", v) for k, v in metadata.items()]
    if customer_email:
        pairs.append(("customer_email", customer_email))
    locale = (language or "").split("-", 1)[0].lower()
    pairs.append(("locale", locale if locale in CHECKOUT_LOCALES else "auto"))
    return urlencode(pairs)


def start_checkout(
    conn: sqlite3.Connection, client: StripeClient, invoice: PayableInvoice, *,
    actor: str, success_url: str, cancel_url: str, customer_email: str | None = None,
    client_address: str | None = None, item_name: str | None = None,
    language: str | None = None, now: dt.datetime | None = None,
) -> CheckoutStart:
    """The Checkout Session to send the customer to for what is open on `invoice`.

    Reuses the account's attempt of this invoice for the same amount, whoever made it, while
    its session is open, or while no session was recorded for it yet (then the POST is sent
    again under the same key); otherwise starts a new attempt with a new key. Any other
    open session of the invoice is then expired at Stripe (`expire_open_sessions`), so the
    invoice has one session that can take a payment. `PAYMENT_STARTED` is recorded once
    per attempt, when its session is recorded.

    Raises:
        CheckoutRefused: Nothing to pay (see `charge_for`), or a confirmed payment of this
            amount is waiting for tonight's run.
        CheckoutUnavailable: Stripe could not be asked or refused the request.
    """
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    charge = charge_for(invoice)
    ensure_schema(conn)
    with opsdb.transaction(conn):
        if invoice.received is None:
            _refuse_when_being_booked(conn, invoice, charge, moment)
        attempt = _reusable_attempt(conn, invoice, charge, moment)
        if attempt is None:
            attempt = _new_attempt(conn, invoice, charge, actor, moment, success_url,
                                   cancel_url, customer_email, item_name, language)
    if attempt.status == OPEN and attempt.session_id and attempt.session_url:
        log.info("invoice %s (account %s): checkout attempt %s offered again, session %s",
                 invoice.invoice_number, invoice.account_key, attempt.attempt_id,
                 attempt.session_id)
        expire_open_sessions(conn, client, invoice.account_key, invoice.invoice_id,
                             keep=attempt.session_id, now=moment,
                             reason=f"replaced by attempt {attempt.attempt_id}")
        return CheckoutStart(attempt.attempt_id, attempt.session_id, attempt.session_url,
                             charge, reused=True)

    session = _post(conn, client, attempt, moment)
    try:
        _check_session(session, attempt, client.api)
    except CheckoutUnavailable as exc:
        _close(conn, attempt, FAILED, str(exc), moment)
        raise
    with opsdb.transaction(conn):
        recorded = conn.execute(
            f"update {ATTEMPTS_TABLE} set status = ?, session_id = ?, session_url = ?, "
            "session_expires_at = ?, error = null, updated_at = ? "
            "where attempt_id = ? and session_id is null",
            (OPEN, session["id"], session["url"], _int_or_none(session.get("expires_at")),
             _stamp(moment), attempt.attempt_id),
        ).rowcount
        if recorded:
            record_event(conn, PAYMENT_STARTED, actor=actor, account_key=invoice.account_key,
                         invoice_id=invoice.invoice_id, object_id=session["id"],
                         client=client_address, at=moment, detail={
                             "checkout_session": session["id"],
                             "attempt": attempt.attempt_id,
                             "amount": str(charge.money.amount),
                             "currency": charge.money.currency})
    log.info("invoice %s (account %s): checkout session %s for %s (attempt %s)",
             invoice.invoice_number, invoice.account_key, session["id"], charge.money,
             attempt.attempt_id)
    expire_open_sessions(conn, client, invoice.account_key, invoice.invoice_id,
                         keep=session["id"], now=moment,
                         reason=f"replaced by attempt {attempt.attempt_id}")
    return CheckoutStart(attempt.attempt_id, session["id"], session["url"], charge,
                         reused=not recorded)


def _refuse_when_being_booked(conn: sqlite3.Connection, invoice: PayableInvoice,
                              charge: Charge, moment: dt.datetime) -> None:
    """A payment Stripe confirmed lately for exactly what is still shown open has not
    reached the warehouse yet (the nightly books it): paying again would pay twice."""
    row = conn.execute(
        f"select attempt_id from {ATTEMPTS_TABLE} where account_key = ? and invoice_id = ? "
        "and currency = ? and amount_minor = ? and confirmed_at > ?",
        (invoice.account_key, invoice.invoice_id, charge.money.currency, charge.minor,
         _stamp(moment - BOOKING_WINDOW)),
    ).fetchone()
    if row is not None:
        raise CheckoutRefused(
            "being_booked", f"invoice {invoice.invoice_number}: a payment of {charge.money} "
            f"was confirmed (attempt {row['attempt_id']}) and is booked by the next nightly "
            "run")


def _reusable_attempt(conn: sqlite3.Connection, invoice: PayableInvoice, charge: Charge,
                      moment: dt.datetime) -> Attempt | None:
    """The account's live attempt of the invoice for this amount, whoever started it: an
    account session and a per-invoice link of the same invoice share one session."""
    rows = conn.execute(
        f"select * from {ATTEMPTS_TABLE} where account_key = ? and invoice_id = ? "
        "and currency = ? and amount_minor = ? and status in (?, ?) and confirmed_at is null "
        "and created_at > ? order by created_at desc",
        (invoice.account_key, invoice.invoice_id, charge.money.currency, charge.minor,
         PENDING, OPEN, _stamp(moment - SESSION_LIFETIME)),
    ).fetchall()
    for row in rows:
        attempt = _attempt_of(row)
        if attempt.status == PENDING:
            if attempt.created_at > moment - PENDING_RETRY_WINDOW:
                return attempt
            continue
        expires = attempt.session_expires_at
        if expires is None or expires <= (moment + REUSE_MARGIN).timestamp():
            continue
        if attempt.session_id and _kept_session(conn, attempt.session_id) is not None:
            continue  # Stripe reported its end (completed or expired) by webhook
        return attempt
    return None


def _new_attempt(conn: sqlite3.Connection, invoice: PayableInvoice, charge: Charge,
                 actor: str, moment: dt.datetime, success_url: str, cancel_url: str,
                 customer_email: str | None, item_name: str | None,
                 language: str | None) -> Attempt:
    attempt_id = uuid.uuid4().hex
    key = f"q2c-portal-checkout-{attempt_id}"
    expires_at = int((moment + SESSION_LIFETIME).timestamp())
    body = session_form(invoice, charge, attempt_id=attempt_id, success_url=success_url,
                        cancel_url=cancel_url, customer_email=customer_email,
                        item_name=item_name, language=language, expires_at=expires_at)
    conn.execute(
        f"insert into {ATTEMPTS_TABLE} (attempt_id, idempotency_key, invoice_id, "
        "invoice_number, account_key, actor, currency, amount, amount_minor, request_body, "
        "status, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (attempt_id, key, invoice.invoice_id, invoice.invoice_number, invoice.account_key,
         actor, charge.money.currency, str(charge.money.amount), charge.minor, body, PENDING,
         _stamp(moment), _stamp(moment)),
    )
    return _attempt_of(conn.execute(f"select * from {ATTEMPTS_TABLE} where attempt_id = ?",
                                    (attempt_id,)).fetchone())


def _post(conn: sqlite3.Connection, client: StripeClient, attempt: Attempt,
          moment: dt.datetime) -> dict[str, Any]:
    """POST the attempt's body under its key; a refusal closes the attempt, a failure that
    may pass leaves it pending for the next click (same key)."""
    try:
        return client.create_session(attempt.request_body, attempt.idempotency_key)
    except StripeRequestError as exc:
        _close(conn, attempt, PENDING if exc.transient else FAILED, str(exc), moment)
        raise CheckoutUnavailable(f"invoice {attempt.invoice_number}: {exc}") from None


def _close(conn: sqlite3.Connection, attempt: Attempt, status: str, error: str,
           moment: dt.datetime) -> None:
    """Keep why the attempt has no session: `pending` may be sent again, `failed` not."""
    with opsdb.transaction(conn):
        conn.execute(f"update {ATTEMPTS_TABLE} set status = ?, error = ?, updated_at = ? "
                     "where attempt_id = ? and session_id is null",
                     (status, error, _stamp(moment), attempt.attempt_id))
    log.error("invoice %s (account %s): checkout attempt %s (%s): %s", attempt.invoice_number,
              attempt.account_key, attempt.attempt_id, status, error)


def _check_session(session: Mapping[str, Any], attempt: Attempt, api: StripeApi) -> None:
    """The session Stripe made is the one asked for, and its URL is Stripe's Checkout."""
    problems = []
    session_id, url = session.get("id"), session.get("url")
    if not isinstance(session_id, str) or not session_id.startswith("cs_"):
        problems.append("no Checkout Session id (cs_...)")
    if not isinstance(url, str) or not url.startswith(api.checkout_origin + "/"):
        problems.append(f"a url outside {api.checkout_origin}")
    if session.get("amount_total") != attempt.amount_minor:
        problems.append(f"amount_total {session.get('amount_total')!r}, not "
                        f"{attempt.amount_minor}")
    if str(session.get("currency") or "").upper() != attempt.currency:
        problems.append(f"currency {session.get('currency')!r}, not {attempt.currency}")
    if session.get("client_reference_id") != attempt.invoice_id:
        problems.append("another client_reference_id")
    if problems:
        raise CheckoutUnavailable(
            f"invoice {attempt.invoice_number}: Stripe's answer to attempt "
            f"{attempt.attempt_id} has {'; '.join(problems)}; check Q2C_STRIPE_URL")


# ---------------------------------------------------------------------------------------
# What the webhook said


@dataclass(frozen=True)
class PaymentState:
    """What is known of one attempt's payment: `state` is AWAITING, PAID, PROCESSING or
    EXPIRED (only a signed webhook moves it from AWAITING)."""

    attempt: Attempt
    state: str


def attempts_of(conn: sqlite3.Connection, account_key: str,
                invoice_id: str) -> list[Attempt]:
    """The attempts with a session of the account's invoice, newest first (by account and
    invoice: another ERP's invoice may have the same id)."""
    ensure_schema(conn)
    rows = conn.execute(
        f"select * from {ATTEMPTS_TABLE} where account_key = ? and invoice_id = ? "
        "and session_id is not null order by created_at desc, attempt_id",
        (account_key, invoice_id)).fetchall()
    return [_attempt_of(row) for row in rows]


def payment_state(conn: sqlite3.Connection, attempt: Attempt) -> PaymentState:
    """The attempt's payment as the signed webhooks left its Checkout Session."""
    session = _kept_session(conn, attempt.session_id) if attempt.session_id else None
    status = session.get("status") if session is not None else None
    if status == "complete":
        paid = session.get("payment_status") in ("paid", "no_payment_required")
        return PaymentState(attempt, PAID if paid else PROCESSING)
    if status == "expired" or attempt.status == CLOSED:
        return PaymentState(attempt, EXPIRED)
    return PaymentState(attempt, AWAITING)


def confirm_payments(conn: sqlite3.Connection, *, account_key: str | None = None,
                     invoice_id: str | None = None,
                     now: dt.datetime | None = None) -> list[str]:
    """Mark attempts whose session a signed webhook stored complete and paid, and record
    `PAYMENT_CONFIRMED` for each, once; return the attempt ids confirmed now.

    Narrowed to one invoice, the account is needed too (an invoice id is unique only within
    its ERP). A payment through a session made before another payment of the invoice was
    kept asked for an amount that did not know of that payment: its event's detail says
    `"overpayment": true` and `"also_paid_by"` (the sessions that paid before), and a
    warning names the invoice (see the module docstring for where finance finds it).
    """
    if invoice_id is not None and account_key is None:
        raise ValueError(f"confirm_payments of invoice {invoice_id}: give its account too")
    ensure_schema(conn)
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    confirmed = []
    with opsdb.transaction(conn):
        rows = conn.execute(
            f"select a.* from {ATTEMPTS_TABLE} a join stripe_objects o "
            "on o.object_type = ? and o.object_id = a.session_id "
            "where a.confirmed_at is null and (? is null or a.account_key = ?) "
            "and (? is null or a.invoice_id = ?) "
            "order by o.event_created, o.updated_at, a.attempt_id",
            (CHECKOUT_SESSION, account_key, account_key, invoice_id, invoice_id)).fetchall()
        for row in rows:
            attempt = _attempt_of(row)
            state = payment_state(conn, attempt)
            if state.state != PAID:
                continue
            session = _kept_session(conn, attempt.session_id) or {}
            conn.execute(f"update {ATTEMPTS_TABLE} set confirmed_at = ?, updated_at = ? "
                         "where attempt_id = ? and confirmed_at is null",
                         (_stamp(moment), _stamp(moment), attempt.attempt_id))
            detail: dict[str, Any] = {
                "checkout_session": attempt.session_id, "attempt": attempt.attempt_id,
                "payment_intent": _id_of(session.get("payment_intent")),
                "amount": str(attempt.amount), "currency": attempt.currency}
            earlier = _paid_without_knowing(conn, attempt)
            if earlier:
                detail.update(overpayment=True, also_paid_by=earlier)
                log.warning(
                    "invoice %s (account %s): a second payment of %s %s (session %s) after "
                    "%s paid it; finance: refund it or apply it elsewhere (the nightly "
                    "leaves it in core.mart_unallocated_cash)", attempt.invoice_number,
                    attempt.account_key, attempt.amount, attempt.currency,
                    attempt.session_id, ", ".join(earlier))
            record_event(conn, PAYMENT_CONFIRMED, actor="stripe",
                         account_key=attempt.account_key, invoice_id=attempt.invoice_id,
                         object_id=attempt.session_id, at=moment, detail=detail)
            confirmed.append(attempt.attempt_id)
            log.info("invoice %s (account %s): payment of %s %s confirmed by Stripe "
                     "(session %s)", attempt.invoice_number, attempt.account_key,
                     attempt.amount, attempt.currency, attempt.session_id)
    return confirmed


def _paid_without_knowing(conn: sqlite3.Connection, attempt: Attempt) -> list[str]:
    """The sessions of confirmed payments of the attempt's invoice that q2c kept after the
    attempt was made: its amount was set without them, so it pays again what they paid.
    The store keeps webhooks to the second; one kept in the second the attempt was made
    counts as unknown to it (a flag too many is checked, a payment twice is not missed)."""
    rows = conn.execute(
        f"select a.session_id, o.updated_at from {ATTEMPTS_TABLE} a join stripe_objects o "
        "on o.object_type = ? and o.object_id = a.session_id where a.account_key = ? "
        "and a.invoice_id = ? and a.attempt_id <> ? and a.confirmed_at is not null "
        "order by o.updated_at, a.session_id",
        (CHECKOUT_SESSION, attempt.account_key, attempt.invoice_id,
         attempt.attempt_id)).fetchall()
    made = attempt.created_at.replace(microsecond=0)
    return [row["session_id"] for row in rows
            if dt.datetime.fromisoformat(row["updated_at"]) >= made]


# ---------------------------------------------------------------------------------------
# Sessions that must not take a payment any more


def expire_open_sessions(conn: sqlite3.Connection, client: StripeClient | None,
                         account_key: str, invoice_id: str, *, reason: str,
                         keep: str | None = None, made_before: dt.datetime | None = None,
                         now: dt.datetime | None = None) -> list[str]:
    """Expire at Stripe the invoice's sessions that could still take a payment (all but
    `keep`; with `made_before`, only those made before it); return the ids expired.

    An expired attempt is `closed` with `reason`. A session Stripe will not expire because
    it completed a moment ago is left alone: its payment is confirmed from its webhook and
    flagged there (`confirm_payments`). Nothing here raises: a Stripe that cannot be asked
    is logged, and the session ends by itself at its `expires_at` (one hour at most).
    Without `client`, one is made from the settings, and only when a session is open.
    """
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    ensure_schema(conn)
    rows = conn.execute(
        f"select * from {ATTEMPTS_TABLE} where account_key = ? and invoice_id = ? "
        "and status = ? and session_id is not null and confirmed_at is null "
        "and (session_expires_at is null or session_expires_at > ?) "
        "order by created_at, attempt_id",
        (account_key, invoice_id, OPEN, int(moment.timestamp()))).fetchall()
    attempts = [attempt for attempt in map(_attempt_of, rows)
                if attempt.session_id != keep
                and (made_before is None or attempt.created_at < made_before)
                and (_kept_session(conn, attempt.session_id or "") or {}).get("status")
                not in ("complete", "expired")]
    if not attempts:
        return []
    if client is None:
        try:
            client = StripeClient(StripeApi.from_env())
        except CheckoutUnavailable as exc:
            log.error("invoice %s (account %s): %d open checkout session(s) cannot be "
                      "expired (%s); they end at their expiry time", invoice_id,
                      account_key, len(attempts), exc)
            return []
    expired = []
    for attempt in attempts:
        if _expire(client, attempt) != "expired":
            continue
        with opsdb.transaction(conn):
            conn.execute(f"update {ATTEMPTS_TABLE} set status = ?, error = ?, updated_at = ? "
                         "where attempt_id = ? and status = ?",
                         (CLOSED, reason, _stamp(moment), attempt.attempt_id, OPEN))
        expired.append(attempt.session_id or "")
        log.info("invoice %s (account %s): checkout session %s expired (%s)",
                 attempt.invoice_number, attempt.account_key, attempt.session_id, reason)
    return expired


def expire_stale_sessions(conn: sqlite3.Connection, client: StripeClient | None,
                          account_key: str, invoice_id: str,
                          now: dt.datetime | None = None) -> list[str]:
    """Once a payment of the invoice is confirmed, expire the sessions made before q2c kept
    it: they ask for an amount that does not know of it. Sessions made later (for what it
    left open) stay; the store keeps webhooks to the second, so one made in that second
    counts as made before."""
    paid = confirmed_payments(conn, account_key, [invoice_id])
    if not paid:
        return []
    last = max(paid, key=lambda payment: payment.kept_at)
    return expire_open_sessions(conn, client, account_key, invoice_id, now=now,
                                made_before=last.kept_at + dt.timedelta(seconds=1),
                                reason=f"the invoice was paid through {last.session_id}")


def _expire(client: StripeClient, attempt: Attempt) -> str | None:
    """Stripe's status of the session after asking to expire it (None when unknown)."""
    try:
        return client.expire_session(attempt.session_id or "").get("status")
    except StripeRequestError as exc:
        refused = exc
    try:
        status = client.retrieve_session(attempt.session_id or "").get("status")
    except StripeRequestError as exc:
        log.error("invoice %s (account %s): checkout session %s could not be expired (%s) "
                  "nor looked up (%s); it ends at its expiry time", attempt.invoice_number,
                  attempt.account_key, attempt.session_id, refused, exc)
        return None
    if status == "complete":
        log.warning("invoice %s (account %s): checkout session %s completed before it could "
                    "be expired; its payment is confirmed from its webhook, and flagged if it "
                    "paid the invoice a second time", attempt.invoice_number,
                    attempt.account_key, attempt.session_id)
    elif status != "expired":
        log.error("invoice %s (account %s): checkout session %s could not be expired (%s); "
                  "it ends at its expiry time", attempt.invoice_number, attempt.account_key,
                  attempt.session_id, refused)
    return status


@dataclass(frozen=True)
class ConfirmedPayment:
    """A portal payment whose Checkout Session a signed webhook stored complete and paid.

    Attributes:
        completed_at: When Stripe completed the session (its event's `created`).
        kept_at: When q2c kept that event (the ops store's clock).
        gateway_ids: The session's payment intent and its charges the webhooks brought:
            the ids the warehouse knows the payment by once the nightly has it.
    """

    attempt_id: str
    invoice_id: str
    session_id: str
    currency: str
    amount: Decimal
    completed_at: dt.datetime
    kept_at: dt.datetime
    gateway_ids: tuple[str, ...]


def confirmed_payments(conn: sqlite3.Connection, account_key: str,
                       invoice_ids: list[str]) -> list[ConfirmedPayment]:
    """The account's confirmed portal payments of these invoices, oldest first, whether or
    not `confirm_payments` has marked them yet. Reads only; a store without the tables
    has none."""
    present = {row[0] for row in conn.execute(
        "select name from sqlite_master where type = 'table' and name in (?, ?)",
        (ATTEMPTS_TABLE, "stripe_objects"))}
    if present != {ATTEMPTS_TABLE, "stripe_objects"} or not invoice_ids:
        return []
    marks = ", ".join("?" for _ in invoice_ids)
    rows = conn.execute(
        f"select a.attempt_id, a.invoice_id, a.session_id, a.currency, a.amount, o.body, "
        f"o.event_created, o.updated_at from {ATTEMPTS_TABLE} a join stripe_objects o "
        "on o.object_type = ? and o.object_id = a.session_id "
        f"where a.account_key = ? and a.invoice_id in ({marks}) "
        "order by o.event_created, a.attempt_id",
        (CHECKOUT_SESSION, account_key, *invoice_ids)).fetchall()
    confirmed = []
    for row in rows:
        session = json.loads(row["body"])
        if session.get("status") != "complete" or session.get("payment_status") not in (
                "paid", "no_payment_required"):
            continue
        intent = _id_of(session.get("payment_intent"))
        confirmed.append(ConfirmedPayment(
            attempt_id=row["attempt_id"], invoice_id=row["invoice_id"],
            session_id=row["session_id"], currency=row["currency"],
            amount=Decimal(row["amount"]),
            completed_at=dt.datetime.fromtimestamp(int(row["event_created"]), dt.UTC),
            kept_at=dt.datetime.fromisoformat(row["updated_at"]),
            gateway_ids=(intent, *_charges_of(conn, intent)) if intent else ()))
    return confirmed


def _charges_of(conn: sqlite3.Connection, intent: str) -> list[str]:
    """The charges of a payment intent the webhooks brought (and its `latest_charge`)."""
    rows = conn.execute(
        "select object_id from stripe_objects where object_type = 'charge' "
        "and json_extract(body, '$.payment_intent') = ? "
        "union select json_extract(body, '$.latest_charge') from stripe_objects "
        "where object_type = 'payment_intent' and object_id = ? "
        "and json_extract(body, '$.latest_charge') is not null", (intent, intent)).fetchall()
    return sorted({row[0] for row in rows if isinstance(row[0], str)})


def _kept_session(conn: sqlite3.Connection, session_id: str) -> dict[str, Any] | None:
    row = conn.execute("select body from stripe_objects where object_type = ? and "
                       "object_id = ?", (CHECKOUT_SESSION, session_id)).fetchone()
    return json.loads(row["body"]) if row else None


# ---------------------------------------------------------------------------------------
# Rows


def _attempt_of(row: sqlite3.Row) -> Attempt:
    confirmed = row["confirmed_at"]
    return Attempt(
        attempt_id=row["attempt_id"], idempotency_key=row["idempotency_key"],
        invoice_id=row["invoice_id"], invoice_number=row["invoice_number"],
        account_key=row["account_key"], actor=row["actor"], currency=row["currency"],
        amount=Decimal(row["amount"]), amount_minor=int(row["amount_minor"]),
        request_body=row["request_body"], status=row["status"],
        session_id=row["session_id"], session_url=row["session_url"],
        session_expires_at=row["session_expires_at"], error=row["error"],
        created_at=dt.datetime.fromisoformat(row["created_at"]),
        confirmed_at=dt.datetime.fromisoformat(confirmed) if confirmed else None,
    )


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id_of(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None
