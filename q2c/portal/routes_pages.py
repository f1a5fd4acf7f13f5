"""The customer's pages: invoices, one invoice, its files, credit notes, payments and the
account statement, plus the theme's stylesheet and logo.

Every page reads through `web.customer_view` (filtered by the account in each statement)
and answers another customer's id with the 404 page. The invoice list and the invoice show
what the ops store knows since the last nightly (`q2c.portal.pending`): payments being
booked and portal disputes; the statement is the books as of that nightly. Lists, the
statement and payments belong to account sessions; a per-invoice link sees its invoice and
its files only.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from q2c.portal import pending, web
from q2c.portal.events import DOCUMENT_DOWNLOADED, INVOICE_VIEWED, STATEMENT_VIEWED

logger = logging.getLogger(__name__)

NAV = [
    ("/invoices", "nav_invoices"),
    ("/credit-notes", "nav_credit_notes"),
    ("/payments", "nav_payments"),
    ("/statement", "nav_statement"),
]


async def home(request: Request) -> Response:
    if getattr(request.state, "customer", None) is None:
        return web.redirect(request, "/sign-in")
    return web.redirect(request, "/invoices")


def invoices(request: Request) -> Response:
    customer = web.require_customer(request)
    with web.customer_view(request) as view:
        found = pending.shown(request, view, view.invoices())
        account = view.account()
    if not customer.is_account_scope:
        if not found:
            web.not_found()
        return web.redirect(request, f"/invoices/{found[0].public_id}")
    return web.render(request, "invoices.html", invoices=found, account=account)


def invoice(request: Request) -> Response:
    web.require_customer(request)
    with web.customer_view(request) as view:
        detail = view.invoice_by_public_id(request.path_params["invoice"])
        if detail is None:
            web.not_found()
        detail = pending.shown_one(request, view, detail)
        account = view.account()
        documents = view.documents(detail)
    web.audit(request, INVOICE_VIEWED, invoice_id=detail.invoice_id,
              detail={"invoice_number": detail.invoice_number})
    return web.render(request, "invoice.html", invoice=detail, account=account,
                      documents=documents,
                      legal_texts=web.legal_texts_for(request, detail, account))


def invoice_file(request: Request) -> Response:
    web.require_customer(request)
    with web.customer_view(request) as view:
        found = view.document_by_public_id(request.path_params["invoice"],
                                           request.path_params["document"])
    if found is None:
        web.not_found()
    detail, document = found
    try:
        content = document.path.read_bytes()
    except OSError:
        logger.error("portal: file %s of invoice %s cannot be read", document.path,
                     detail.invoice_number)
        web.not_found()
    web.audit(request, DOCUMENT_DOWNLOADED, invoice_id=detail.invoice_id,
              object_id=document.public_id,
              detail={"invoice_number": detail.invoice_number, "kind": document.kind,
                      "filename": document.filename})
    return web.download(request, content, document.filename, document.content_type)


def credit_notes(request: Request) -> Response:
    web.require_account_scope(request)
    with web.customer_view(request) as view:
        notes = view.credit_notes()
        account = view.account()
    return web.render(request, "credit_notes.html", credit_notes=notes, account=account)


def payments(request: Request) -> Response:
    web.require_account_scope(request)
    with web.customer_view(request) as view:
        found = view.payments()
        account = view.account()
    return web.render(request, "payments.html", payments=found, account=account)


def statement(request: Request) -> Response:
    web.require_account_scope(request)
    with web.customer_view(request) as view:
        found = view.statement()
        account = view.account()
    web.audit(request, STATEMENT_VIEWED)
    # The balances are those of the last nightly: the statement is as of its business day.
    return web.render(request, "statement.html", statement=found, account=account,
                      today=web.portal(request).settings.run_date)


def asset(request: Request) -> Response:
    pages = request.app.state.portal.pages
    found = pages.asset(request.path_params["theme"], request.path_params["version"],
                        request.path_params["name"])
    if found is None:
        web.not_found()
    body, media_type = found
    return Response(body, media_type=media_type)


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/invoices", invoices, methods=["GET"]),
    Route("/invoices/{invoice}", invoice, methods=["GET"]),
    Route("/invoices/{invoice}/files/{document}", invoice_file, methods=["GET"]),
    Route("/credit-notes", credit_notes, methods=["GET"]),
    Route("/payments", payments, methods=["GET"]),
    Route("/statement", statement, methods=["GET"]),
    Route("/assets/{theme}/{version}/{name}", asset, methods=["GET"]),
]
