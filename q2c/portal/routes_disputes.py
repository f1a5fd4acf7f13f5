"""Disputing an invoice in the portal: the form, opening one, its page and its attachment.

- `GET /invoices/{invoice}/dispute`: the form (reason, the line at fault, a comment, one
  attachment) and the invoice's earlier disputes.
- `POST /invoices/{invoice}/dispute` (multipart, CSRF-checked): opens the dispute
  (`q2c.portal.disputes`), expires the invoice's open Checkout Sessions at Stripe (a
  disputed invoice is not paid) and answers 303 to its page; the customer's
  acknowledgement is mailed after the response. A refused form comes back with what to
  fix.
- `GET /disputes/{dispute}`: where the dispute stands, with what the customer wrote
  (escaped like every value on a page).
- `GET /disputes/{dispute}/attachment`: the customer's file, as an attachment under the
  name q2c made for it.

Disputes belong to account sessions: a per-invoice link views, downloads and pays only, so
it gets the 404 page here, as another customer's invoice or dispute does.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from q2c.portal import checkout, web
from q2c.portal.contacts import ContactBook
from q2c.portal.dispute_inputs import (
    MAX_ATTACHMENT_BYTES,
    DisputedInvoice,
    DisputeError,
    Upload,
)
from q2c.portal.dispute_replies import deliver_replies, dispute_book
from q2c.portal.disputes import DisputeBook, ensure_tables
from q2c.portal.events import DOCUMENT_DOWNLOADED

logger = logging.getLogger(__name__)

# The dispute link on the invoice page (content/portal/templates/dispute_action.html).
INVOICE_ACTIONS = ("dispute_action.html",)
FORM_TEMPLATE = "dispute_form.html"
PAGE_TEMPLATE = "dispute.html"
_FIELDS = ("reason", "line", "comment")
# A line is named by its printed number: ASCII digits, a few of them (no `²`, no 5000 nines).
_LINE_NUMBER = re.compile(r"[0-9]{1,6}")


def ensure_schema(conn: Any) -> None:
    ensure_tables(conn)


async def dispute_form(request: Request) -> Response:
    customer = web.require_account_scope(request)
    return await run_in_threadpool(_form, request, customer)


async def open_dispute(request: Request) -> Response:
    customer = web.require_account_scope(request)
    form = await request.form(max_files=1, max_fields=len(_FIELDS) + 2)
    web.check_csrf(request, form)
    values = {name: str(form.get(name) or "") for name in _FIELDS}
    upload = form.get("attachment")
    data, name = None, ""
    if isinstance(upload, UploadFile) and (upload.filename or upload.size):
        # One byte over the limit is enough to refuse it.
        data, name = await upload.read(MAX_ATTACHMENT_BYTES + 1), upload.filename or ""
    return await run_in_threadpool(_open, request, customer, values, data, name)


def dispute_page(request: Request) -> Response:
    customer = web.require_account_scope(request)
    dispute = _book(request).for_customer(request.path_params["dispute"],
                                          customer.account_key)
    if dispute is None:
        web.not_found()
    with web.customer_view(request) as view:
        invoice = view.invoice_by_id(dispute.invoice_id)
        account = view.account()
    reasons = _book(request).reasons
    return web.render(request, PAGE_TEMPLATE, dispute=dispute, invoice=invoice,
                      account=account,
                      reason=reasons.get(dispute.reason_code).label(customer.language))


def dispute_attachment(request: Request) -> Response:
    customer = web.require_account_scope(request)
    book = _book(request)
    dispute = book.for_customer(request.path_params["dispute"], customer.account_key)
    if dispute is None or dispute.attachment is None:
        web.not_found()
    try:
        data = book.attachment_bytes(dispute)
    except LookupError as exc:
        logger.error("portal: %s", exc)
        web.not_found()
    web.audit(request, DOCUMENT_DOWNLOADED, invoice_id=dispute.invoice_id,
              object_id=dispute.dispute_id,
              detail={"invoice_number": dispute.invoice_number, "kind": "dispute_attachment",
                      "dispute": dispute.reference})
    return web.download(request, data, dispute.attachment.name,
                        dispute.attachment.content_type)


def _form(request: Request, customer: web.Customer, error: str | None = None,
          values: dict[str, str] | None = None, status_code: int = 200) -> Response:
    with web.customer_view(request) as view:
        invoice = view.invoice_by_public_id(request.path_params["invoice"])
        if invoice is None:
            web.not_found()
        account = view.account()
    book = _book(request)
    return web.render(
        request, FORM_TEMPLATE, status_code=status_code, invoice=invoice, account=account,
        reasons=[(reason.code, reason.label(customer.language), reason.names_line)
                 for reason in book.reasons.offered()],
        earlier=book.of_invoice(customer.account_key, invoice.invoice_id),
        error=error, values=values or {}, max_megabytes=MAX_ATTACHMENT_BYTES // 2**20)


def _open(request: Request, customer: web.Customer, values: dict[str, str],
          data: bytes | None, filename: str) -> Response:
    with web.customer_view(request) as view:
        invoice = view.invoice_by_public_id(request.path_params["invoice"])
        if invoice is None:
            web.not_found()
        account = view.account()
    context = web.portal(request)
    line = values["line"].strip()
    if line and not _LINE_NUMBER.fullmatch(line):
        return _form(request, customer, "dispute_error_line", values, 400)
    contacts = ContactBook(context.settings.ops_store, _registry(request),
                           seller_name=context.settings.seller.name)
    try:
        dispute = _book(request).open(
            DisputedInvoice.of(customer.account_key, invoice),
            reason_code=values["reason"], comment=values["comment"],
            line_number=int(line) if line else None,
            upload=Upload(filename, data) if data is not None else None,
            actor=customer.actor, language=customer.language, client=context.client,
            reply_to=contacts.billing_email(customer.account_key,
                                            account.billing_email if account else None))
    except DisputeError as exc:
        logger.info("portal: dispute of invoice %s (account %s) refused: %s",
                    invoice.invoice_number, customer.account_key, exc)
        return _form(request, customer, exc.key or "dispute_error", values, 400)
    with context.store() as conn:
        checkout.expire_open_sessions(conn, None, customer.account_key, invoice.invoice_id,
                                      reason=f"invoice disputed ({dispute.reference})")
    response = web.redirect(request, f"/disputes/{dispute.dispute_id}")
    response.background = BackgroundTask(_send_replies, request)
    return response


def _send_replies(request: Request) -> None:
    """Mail what the dispute's step wrote for the customer (after the response)."""
    state = request.app.state.portal
    try:
        deliver_replies(state.settings.ops_store, _mailer(state))
    except Exception:  # the dispute is stored; the reply waits for `disputes send`
        logger.exception("portal: dispute replies not sent now; `q2c portal disputes "
                         "send` sends them")


def _mailer(state: Any) -> Any:
    if state.mailer is not None:
        return state.mailer
    from q2c.invoice_delivery import mail_transport

    return mail_transport(state.settings)


def _book(request: Request) -> DisputeBook:
    return dispute_book(web.portal(request).settings, content=_registry(request))


def _registry(request: Request) -> Any:
    return request.app.state.portal.pages.registry


ROUTES = [
    Route("/invoices/{invoice}/dispute", dispute_form, methods=["GET"]),
    Route("/invoices/{invoice}/dispute", open_dispute, methods=["POST"]),
    Route("/disputes/{dispute}", dispute_page, methods=["GET"]),
    Route("/disputes/{dispute}/attachment", dispute_attachment, methods=["GET"]),
]
