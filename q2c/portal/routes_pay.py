"""Paying an invoice in the portal: the pay button, and the pages Stripe sends customers back to.

- `POST /invoices/{invoice}/pay` (CSRF-checked): creates the Checkout Session of this
  payment attempt for the amount due the invoice page shows: what the warehouse says is
  open, less confirmed portal payments not booked yet (`q2c.portal.pending`; read through
  the customer's view, an amount in the form is never read), and answers 303 to its
  Stripe Checkout URL, which must pass the portal's redirect rule (`redirect_origins`).
  An invoice in dispute (in the CRM or in the portal) is refused.
- `GET /invoices/{invoice}/paid`: Stripe's `success_url`. The redirect proves nothing, so
  the page says "payment received, confirmation pending" until a signed webhook has stored
  the session complete and paid; then it says paid, `PAYMENT_CONFIRMED` is recorded, and
  the invoice's other sessions made before the payment are expired at Stripe.
  Attempts are looked up by the signed-in account and the invoice id together.
- `GET /invoices/{invoice}/cancelled`: Stripe's `cancel_url`: nothing was charged.

Another customer's invoice answers 404 on all three, as every portal page does.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from q2c.portal import checkout, pending, web
from q2c.settings import Settings
from q2c.sources.connectors.errors import ConfigurationError

log = logging.getLogger(__name__)

TEMPLATE = "payment.html"
# The pay button on the invoice page (content/portal/templates/pay_action.html).
INVOICE_ACTIONS = ("pay_action.html",)
# Page states beyond checkout's: the customer left Stripe without paying.
NOT_COMPLETED = "not_completed"
CANCELLED = "cancelled"
REFUSED = "refused"
UNAVAILABLE = "unavailable"
NONE = "none"


def ensure_schema(conn: Any) -> None:
    checkout.ensure_schema(conn)


def redirect_origins(settings: Settings) -> list[str]:
    """Stripe Checkout's URL prefix (of the API in Q2C_STRIPE_URL): where /pay redirects."""
    try:
        return [checkout.checkout_url_prefix()]
    except ConfigurationError as exc:
        log.error("portal payments: %s; payment redirects are refused until it is fixed", exc)
        return []


async def pay(request: Request) -> Response:
    customer = web.require_customer(request)
    form = await request.form()
    web.check_csrf(request, form)
    return await run_in_threadpool(_pay, request, customer)


def _pay(request: Request, customer: web.Customer) -> Response:
    public = request.path_params["invoice"]
    invoice, account = _invoice(request, public)
    context = web.portal(request)
    settings = context.settings
    # The amount due the invoice page shows: the balance less payments being booked.
    payable = checkout.PayableInvoice(
        invoice_id=invoice.invoice_id, invoice_number=invoice.invoice_number,
        account_key=customer.account_key, currency=invoice.currency,
        open_amount=invoice.amount_due, disputed=invoice.in_dispute,
        received=invoice.received_total)
    base = settings.portal_base_url.rstrip("/")
    try:
        client = checkout.StripeClient(checkout.StripeApi.from_env())
        with context.store() as conn:
            started = checkout.start_checkout(
                conn, client, payable, actor=customer.actor, client_address=context.client,
                customer_email=account.billing_email if account else None,
                language=customer.language,
                success_url=f"{base}/invoices/{public}/paid?session_id={{CHECKOUT_SESSION_ID}}",
                cancel_url=f"{base}/invoices/{public}/cancelled")
    except checkout.CheckoutRefused as exc:
        log.info("portal: payment of invoice %s (account %s) refused: %s",
                 invoice.invoice_number, customer.account_key, exc)
        return _page(request, invoice, account, REFUSED, 409, reason=exc.reason)
    except checkout.CheckoutUnavailable as exc:
        log.error("portal: payment of invoice %s (account %s) could not start: %s",
                  invoice.invoice_number, customer.account_key, exc)
        return _page(request, invoice, account, UNAVAILABLE, 503)
    response = web.redirect(request, started.url)
    if response.headers.get("location") != started.url:
        log.error("portal: the Checkout URL of invoice %s (session %s) is not among the "
                  "allowed redirects %s; check Q2C_STRIPE_URL", invoice.invoice_number,
                  started.session_id, redirect_origins(settings))
        return _page(request, invoice, account, UNAVAILABLE, 503)
    return response


def paid(request: Request) -> Response:
    customer = web.require_customer(request)
    invoice, account = _invoice(request, request.path_params["invoice"])
    session_id = request.query_params.get("session_id")
    with web.portal(request).store() as conn:
        checkout.confirm_payments(conn, account_key=customer.account_key,
                                  invoice_id=invoice.invoice_id)
        checkout.expire_stale_sessions(conn, None, customer.account_key, invoice.invoice_id)
        attempts = checkout.attempts_of(conn, customer.account_key, invoice.invoice_id)
        chosen = next((a for a in attempts if a.session_id == session_id),
                      attempts[0] if attempts else None)
        state = checkout.payment_state(conn, chosen) if chosen else None
    if state is None:
        return _page(request, invoice, account, NONE)
    shown = state.state
    if shown == checkout.AWAITING and chosen.session_id == session_id:
        shown = _as_stripe_says(chosen)
    return _page(request, invoice, account, shown, attempt=chosen)


def cancelled(request: Request) -> Response:
    web.require_customer(request)
    invoice, account = _invoice(request, request.path_params["invoice"])
    return _page(request, invoice, account, CANCELLED)


def _invoice(request: Request, public: str) -> tuple[Any, Any]:
    """The customer's invoice as its page shows it (payments being booked, portal
    disputes), and the account; the 404 page for another customer's id."""
    with web.customer_view(request) as view:
        invoice = view.invoice_by_public_id(public)
        if invoice is None:
            web.not_found()
        return pending.shown_one(request, view, invoice), view.account()


def _as_stripe_says(attempt: checkout.Attempt) -> str:
    """Before the webhook: AWAITING when Stripe has the session complete (or cannot be
    asked), NOT_COMPLETED while it is open (the customer came back without paying)."""
    try:
        session = checkout.StripeClient(checkout.StripeApi.from_env()).retrieve_session(
            attempt.session_id or "")
    except (checkout.CheckoutUnavailable, checkout.StripeRequestError) as exc:
        log.warning("portal: session %s of invoice %s could not be looked up (%s); shown "
                    "as awaiting confirmation", attempt.session_id, attempt.invoice_number,
                    exc)
        return checkout.AWAITING
    status = session.get("status")
    if status == "open":
        return NOT_COMPLETED
    if status == "expired":
        return checkout.EXPIRED
    return checkout.AWAITING


def _page(request: Request, invoice: Any, account: Any, state: str, status_code: int = 200,
          **values: Any) -> Response:
    return web.render(request, TEMPLATE, status_code=status_code, invoice=invoice,
                      account=account, state=state, **values)


ROUTES = [
    Route("/invoices/{invoice}/pay", pay, methods=["POST"]),
    Route("/invoices/{invoice}/paid", paid, methods=["GET"]),
    Route("/invoices/{invoice}/cancelled", cancelled, methods=["GET"]),
]
