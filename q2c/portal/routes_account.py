"""The customer's settings: the billing address and how invoices reach them.

- `GET /account`: the billing address in force, a change waiting for confirmation, the
  delivery preference chosen here, and the forms to change them with the consent wording.
- `POST /account/billing-email` (CSRF-checked): keeps the new address pending and mails
  the confirmation link to it (`q2c.portal.contacts`); nothing changes before it is
  confirmed.
- `POST /account/delivery` (CSRF-checked): email or portal, with the customer's consent.
- `GET /account/confirm/{token}`: the page the confirmation link opens; it changes nothing
  (mail scanners follow links) and shows only the address being confirmed.
- `POST /account/confirm/{token}` (CSRF-checked): confirms; the address it replaces is told.

The confirmation works without signing in: whoever reads the mail at the new address holds
the link. An unknown, used, expired or replaced link answers 404.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from q2c.portal import web
from q2c.portal.contacts import (
    EMAIL_DELIVERY,
    PORTAL_DELIVERY,
    AddressChange,
    ContactBook,
    ContactError,
    ensure_tables,
)

logger = logging.getLogger(__name__)

NAV = [("/account", "nav_account")]
SETTINGS_TEMPLATE = "account_settings.html"
CONFIRM_TEMPLATE = "contact_confirm.html"
_SAVED = {"sent": "account_sent", "email": "account_saved_email",
          "portal": "account_saved_portal"}


def ensure_schema(conn: Any) -> None:
    ensure_tables(conn)


def settings_page(request: Request) -> Response:
    customer = web.require_account_scope(request)
    notice = _SAVED.get(request.query_params.get("saved", ""))
    return _settings(request, customer, notice=notice)


async def change_billing_email(request: Request) -> Response:
    customer = web.require_account_scope(request)
    form = await request.form(max_files=0, max_fields=4)
    web.check_csrf(request, form)
    return await run_in_threadpool(_change_billing_email, request, customer,
                                   str(form.get("email") or ""), form.get("consent") == "yes")


async def change_delivery(request: Request) -> Response:
    customer = web.require_account_scope(request)
    form = await request.form(max_files=0, max_fields=4)
    web.check_csrf(request, form)
    return await run_in_threadpool(_change_delivery, request, customer,
                                   str(form.get("preference") or ""),
                                   form.get("consent") == "yes")


def confirm_page(request: Request) -> Response:
    change = _contacts(request).pending(request.path_params["token"])
    if change is None:
        return web.render(request, CONFIRM_TEMPLATE, status_code=404, state="invalid")
    return web.render(request, CONFIRM_TEMPLATE, state="pending", change=change,
                      token=request.path_params["token"])


async def confirm(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=2)
    web.check_csrf(request, form)
    return await run_in_threadpool(_confirm, request)


def _settings(request: Request, customer: web.Customer, *, notice: str | None = None,
              error: str | None = None, email: str = "", status_code: int = 200
              ) -> Response:
    with web.customer_view(request) as view:
        account = view.account()
    if account is None:
        web.not_found()
    contacts = _contacts(request)
    override = contacts.override(customer.account_key)
    return web.render(
        request, SETTINGS_TEMPLATE, status_code=status_code, account=account,
        billing_email=contacts.billing_email(customer.account_key, account.billing_email),
        pending=contacts.pending_for(customer.account_key),
        preference=override.preference if override else None,
        consents={purpose: contacts.consent_text(purpose, customer.language, account.name)
                  for purpose in (EMAIL_DELIVERY, PORTAL_DELIVERY)},
        notice=notice, error=error, email=email)


def _change_billing_email(request: Request, customer: web.Customer, email: str,
                          consent: bool) -> Response:
    with web.customer_view(request) as view:
        account = view.account()
    if account is None:
        web.not_found()
    context = web.portal(request)
    contacts = _contacts(request)
    try:
        change, token = contacts.request_address_change(
            customer.account_key, email, actor=customer.actor, language=customer.language,
            customer_name=account.name, consent=consent, client=context.client,
            previous_email=contacts.billing_email(customer.account_key,
                                                  account.billing_email))
    except ContactError as exc:
        return _settings(request, customer, error=exc.key, email=email, status_code=400)
    mail = contacts.confirmation_mail(change, token, sender=context.settings.mail_from,
                                      base_url=context.settings.portal_base_url)
    response = web.redirect(request, "/account?saved=sent")
    response.background = BackgroundTask(_send, request, mail, change)
    return response


def _change_delivery(request: Request, customer: web.Customer, preference: str,
                     consent: bool) -> Response:
    with web.customer_view(request) as view:
        account = view.account()
    if account is None:
        web.not_found()
    try:
        _contacts(request).set_preference(
            customer.account_key, preference, actor=customer.actor,
            language=customer.language, customer_name=account.name, consent=consent,
            client=web.portal(request).client)
    except ContactError as exc:
        return _settings(request, customer, error=exc.key, status_code=400)
    return web.redirect(request, f"/account?saved={preference}")


def _confirm(request: Request) -> Response:
    contacts = _contacts(request)
    context = web.portal(request)
    try:
        change = contacts.confirm(request.path_params["token"], client=context.client)
    except ContactError:
        return web.render(request, CONFIRM_TEMPLATE, status_code=404, state="invalid")
    response = web.render(request, CONFIRM_TEMPLATE, state="confirmed", change=change)
    notice = contacts.changed_notice(change, sender=context.settings.mail_from)
    if notice is not None:
        response.background = BackgroundTask(_send, request, notice, change)
    return response


def _send(request: Request, envelope: Any, change: AddressChange) -> None:
    """Mail a contact message after the response; a failure is logged, not shown."""
    state = request.app.state.portal
    try:
        receipt = _mailer(state).send(envelope)
    except Exception:
        logger.exception("portal: contact mail %s of account %s not sent", envelope.key[:40],
                         change.account_key)
        return
    logger.info("portal: contact mail of account %s sent via %s", change.account_key,
                receipt.location)


def _mailer(state: Any) -> Any:
    if state.mailer is not None:
        return state.mailer
    from q2c.invoice_delivery import mail_transport

    return mail_transport(state.settings)


def _contacts(request: Request) -> ContactBook:
    state = request.app.state.portal
    return ContactBook(state.settings.ops_store, state.pages.registry,
                       seller_name=state.settings.seller.name)


ROUTES = [
    Route("/account", settings_page, methods=["GET"]),
    Route("/account/billing-email", change_billing_email, methods=["POST"]),
    Route("/account/delivery", change_delivery, methods=["POST"]),
    Route("/account/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/account/confirm/{token}", confirm, methods=["POST"]),
]
