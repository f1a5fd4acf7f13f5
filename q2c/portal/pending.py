"""What the portal knows of an invoice before tonight's run: portal payments Stripe confirmed
and portal disputes not resolved.

The warehouse learns of both only when the nightly runs. Until then the ops store has them,
and pages show each invoice as the customer left it:

- A payment whose Checkout Session a signed webhook stored complete and paid is
  "received, being booked": its amount comes off the amount due (down to 0 at most), and
  the pay button goes once nothing is due. It stays so until the warehouse shows the
  payment applied to the invoice (its charge or payment intent, as the payment's id or
  reference), and at most `checkout.BOOKING_WINDOW` after q2c kept the confirmation, the
  same time the checkout refuses to take that amount again.
- An invoice with a portal dispute that is not resolved is in dispute: no pay button,
  and the checkout refuses it.

    with web.customer_view(request) as view:
        invoices = pending.shown(request, view, view.invoices())
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from starlette.requests import Request

from q2c.opsdb import connect
from q2c.portal import checkout, web
from q2c.portal.access import CustomerView, InvoiceSummary, ReceivedPayment
from q2c.portal.disputes import open_disputed_invoices
from q2c.settings import business_date

logger = logging.getLogger(__name__)

Invoice = TypeVar("Invoice", bound=InvoiceSummary)


def shown(request: Request, view: CustomerView, invoices: Sequence[Invoice]) -> list[Invoice]:
    """`invoices` as this request's pages show them (see `with_pending`)."""
    settings = web.portal(request).settings
    return with_pending(view, settings.ops_store, invoices,
                        timezone=settings.seller.timezone, now=web.now())


def shown_one(request: Request, view: CustomerView, invoice: Invoice) -> Invoice:
    return shown(request, view, [invoice])[0]


def with_pending(view: CustomerView, store: Path, invoices: Sequence[Invoice], *,
                 timezone: str, now: dt.datetime) -> list[Invoice]:
    """The invoices with the payments being booked (`received`) and the open portal
    disputes (`portal_dispute`) of the ops store at `store`; `received_on` is the day the
    payment was completed in `timezone` (the seller's)."""
    if not invoices:
        return list(invoices)
    disputed = {invoice_id for account, invoice_id in open_disputed_invoices(store)
                if account == view.account_key}
    with connect(store) as conn:
        confirmed = checkout.confirmed_payments(
            conn, view.account_key, [invoice.invoice_id for invoice in invoices])
    by_invoice: dict[str, list[checkout.ConfirmedPayment]] = {}
    for payment in confirmed:
        if payment.kept_at > now - checkout.BOOKING_WINDOW:
            by_invoice.setdefault(payment.invoice_id, []).append(payment)
    return [_with(view, invoice, by_invoice.get(invoice.invoice_id, []),
                  invoice.invoice_id in disputed, timezone) for invoice in invoices]


def _with(view: CustomerView, invoice: Invoice, payments: list[checkout.ConfirmedPayment],
          disputed: bool, timezone: str) -> Invoice:
    received = tuple(
        ReceivedPayment(payment.amount, payment.currency,
                        business_date(payment.completed_at, timezone))
        for payment in _not_booked(view, invoice, payments))
    if not received and not disputed:
        return invoice
    return dataclasses.replace(invoice, received=received, portal_dispute=disputed)


def _not_booked(view: CustomerView, invoice: InvoiceSummary,
                payments: list[checkout.ConfirmedPayment]) -> list[checkout.ConfirmedPayment]:
    """The payments the warehouse has not applied to the invoice yet."""
    payments = [payment for payment in payments if _same_currency(invoice, payment)]
    if not payments:
        return []
    booked = view.payments_applied(
        invoice, [value for payment in payments for value in payment.gateway_ids])
    waiting = []
    for payment in payments:
        if booked.intersection(payment.gateway_ids):
            logger.debug("invoice %s: portal payment %s is booked in the warehouse",
                         invoice.invoice_number, payment.session_id)
            continue
        waiting.append(payment)
    return waiting


def _same_currency(invoice: InvoiceSummary, payment: checkout.ConfirmedPayment) -> bool:
    if payment.currency == invoice.currency:
        return True
    logger.warning("invoice %s (%s): confirmed portal payment %s is in %s; not taken off "
                   "the amount due", invoice.invoice_number, invoice.currency,
                   payment.session_id, payment.currency)
    return False
