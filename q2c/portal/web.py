"""What every portal route module uses: the signed-in customer, CSRF, pages, 404 and audit.

A route module (`q2c/portal/routes_*.py`) exposes `ROUTES: list[starlette.routing.Route]`;
`q2c.portal.app.ROUTE_MODULES` lists the modules (by dotted name) whose routes the app
serves. A module may also define:

- `ensure_schema(conn)`: called once at startup with an ops store connection (create your
  tables there, `create table if not exists`);
- `NAV = [("/path", "text_key")]`: entries of the navigation of account sessions;
- `INVOICE_ACTIONS = ["my_action.html"]`: templates included in the invoice page's
  actions section (they see `invoice`, `customer`, `t`, `csrf_token`, `request`);
- `redirect_origins(settings) -> [url prefix]`: external URLs `redirect()` may go to (the
  payment provider's checkout); they are also allowed in the CSP `form-action`.

Endpoints may be `async def` (needed to `await request.form()`) or plain `def` (run in a
thread pool; fine for reads). A route reads like:

    from q2c.portal import web
    from q2c.portal.events import DISPUTE_OPENED

    async def open_dispute(request):
        customer = web.require_customer(request)      # 303 to sign-in when signed out
        form = await request.form()
        web.check_csrf(request, form)                 # 403 page on a bad token
        with web.customer_view(request) as view:      # reads filtered by the account
            invoice = view.invoice_by_public_id(request.path_params["invoice"])
        if invoice is None:
            web.not_found()                           # raises: the 404 page
        with web.portal(request).store() as conn, transaction(conn):
            ...                                       # your change
            web.audit(request, DISPUTE_OPENED, conn=conn, invoice_id=invoice.invoice_id)
        return web.redirect(request, f"/invoices/{invoice.public_id}")

    ROUTES = [Route("/invoices/{invoice}/disputes", open_dispute, methods=["POST"])]

Pages: `render(request, "my_page.html", **values)` fills a Jinja2 template from
`content/portal/templates/` (HTML escaped; extend `base.html` and fill `{% block title %}`
and `{% block content %}`) with the customer's language texts `t` (`content/portal/texts/
<lang>.yaml` merged with every `<module>.<lang>.yaml` there; `t.key` or `t["key"]`), the
governed theme's colors, `csrf_token` (put `<input type="hidden" name="csrf_token"
value="{{ csrf_token }}">` in every POST form), `customer`, `account` and `seller`.
Invoice pages and files carry `Cache-Control: no-store` (the middleware sets it on every
page; `download()` on files). Never build a redirect from user input by hand: use
`redirect()`, which accepts only paths of this portal (see `security.safe_redirect`).

Rules a route must keep: read customer data only through `customer_view()` (every
statement is filtered by the customer's account, and by the invoice for a per-invoice
link); answer another customer's object with `not_found()`, never 403; record what the
customer did with `audit()` (a view, download, dispute step, payment).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from q2c.opsdb import connect as connect_store
from q2c.portal import security
from q2c.portal.events import record_event
from q2c.settings import Settings

ACCOUNT_SCOPE = "account"
INVOICE_SCOPE_PREFIX = "invoice:"
VIA_SIGN_IN = "sign_in"
VIA_LINK = "link"


@dataclass(frozen=True)
class Customer:
    """Who is signed in, and what they may see.

    Attributes:
        account_key: The account (dim_accounts.account_key) every read is filtered by.
        contact_id: The billing contact who signed in (`<crm system>:<contact id>`,
            `billing:<account key>` for the account's billing address in the warehouse, or
            `portal-billing:<account key>` for the one the customer confirmed in the
            portal); for a per-invoice link, the link's id.
        language: The language pages are shown in (`en`, `de`, ...).
        scope: `account` after a magic-link sign-in; `invoice:<invoice_id>` after opening
            the link of one invoice (that invoice only: view, download, pay).
        via: `sign_in` or `link`.
        session_id: The id of the server-side session (not the cookie's secret).
    """

    account_key: str
    contact_id: str
    language: str
    scope: str = ACCOUNT_SCOPE
    via: str = VIA_SIGN_IN
    session_id: str = ""

    @property
    def invoice_id(self) -> str | None:
        """The one invoice of a per-invoice session; None for an account session."""
        if self.scope.startswith(INVOICE_SCOPE_PREFIX):
            return self.scope[len(INVOICE_SCOPE_PREFIX):]
        return None

    @property
    def is_account_scope(self) -> bool:
        return self.scope == ACCOUNT_SCOPE

    @property
    def actor(self) -> str:
        """The actor of portal events: `customer:<contact id>` or `link:<link id>`."""
        return f"link:{self.contact_id}" if self.via == VIA_LINK else f"customer:{self.contact_id}"


@dataclass(frozen=True)
class PortalContext:
    """The portal as one request sees it.

    Attributes:
        settings: The q2c settings the app was created with.
        store: Opens the operational store: `with ctx.store() as conn:` (SQLite, autocommit;
            wrap changes in `q2c.opsdb.transaction(conn)`).
        customer: The signed-in customer, or None.
        client: The client address as the portal sees it (for rate limits and the audit).
        secret: The portal secret (public ids, CSRF tokens, one-time code hashes).
    """

    settings: Settings
    store: Callable[[], AbstractContextManager[sqlite3.Connection]]
    customer: Customer | None
    client: str
    secret: bytes = field(repr=False, default=b"")


class SignInRequired(HTTPException):
    """No valid session: pages redirect to the sign-in page, other requests get 401."""

    def __init__(self) -> None:
        super().__init__(status_code=401, detail="sign in to continue")


class WarehouseRefreshing(HTTPException):
    """The nightly holds the DuckDB warehouse: the 503 page says to try again in a minute."""

    def __init__(self) -> None:
        super().__init__(status_code=503, detail="the portal is being refreshed",
                         headers={"Retry-After": "60"})


def portal(request: Request) -> PortalContext:
    """The `PortalContext` of this request (made once per request)."""
    cached = getattr(request.state, "portal_context", None)
    if cached is not None:
        return cached
    state = _state(request)
    context = PortalContext(
        settings=state.settings,
        store=lambda: _store(state.settings.ops_store),
        customer=getattr(request.state, "customer", None),
        client=security.client_address(request),
        secret=state.secret,
    )
    request.state.portal_context = context
    return context


def require_customer(request: Request) -> Customer:
    """The signed-in customer; raises `SignInRequired` (sign-in page or 401) otherwise."""
    customer = getattr(request.state, "customer", None)
    if customer is None:
        raise SignInRequired()
    return customer


def require_account_scope(request: Request) -> Customer:
    """The customer of an account session; a per-invoice session gets the 404 page.

    Pages that list more than one invoice (lists, statement, payments, settings) call this:
    a per-invoice link never shows anything but its invoice.
    """
    customer = require_customer(request)
    if not customer.is_account_scope:
        not_found()
    return customer


def check_csrf(request: Request, form: FormData | Mapping[str, Any]) -> None:
    """Refuse (403 page) a POST whose `csrf_token` field is not this browser's token."""
    if not security.csrf_valid(request, form.get("csrf_token")):
        raise HTTPException(status_code=403, detail="the form has expired; reload the page")


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (what `render` puts in `csrf_token`)."""
    return security.csrf_token(request)


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> Response:
    """A page from `content/portal/templates/<template>` (see the module docstring).

    `ctx` may hold `legal_texts` (from `legal_texts_for`) to print under the page, and
    `title` for the page title; everything else is passed to the template as it is.
    """
    return _state(request).pages.render(request, template, status_code, ctx)


def legal_texts_for(request: Request, invoice: Any, account: Any = None) -> list[dict]:
    """The governed legal texts of one invoice (an `access.InvoiceDetail`; `account` from
    `CustomerView.account()` gives the buyer's country), as the PDF prints them, in the
    customer's language: each `{id, version, case, language, text}`."""
    return _state(request).pages.legal_texts(request, invoice, account)


def not_found() -> NoReturn:
    """Stop here with the 404 page: for a missing object and for another customer's."""
    raise HTTPException(status_code=404, detail="not found")


def redirect(request: Request, target: str, status_code: int = 303) -> Response:
    """A redirect to a path of this portal (or a configured URL); anything else goes to /."""
    state = _state(request)
    location = security.safe_redirect(target, state.base_path, state.allowed_urls)
    return RedirectResponse(location, status_code=status_code)


def download(request: Request, content: bytes | Path, filename: str,
             content_type: str = "application/octet-stream") -> Response:
    """A file as an attachment: safe file name (RFC 6266/5987), `no-store`, `nosniff`."""
    body = content.read_bytes() if isinstance(content, Path) else content
    return Response(body, media_type=content_type,
                    headers=security.download_headers(filename))


@contextmanager
def customer_view(request: Request) -> Iterator[Any]:
    """A `CustomerView` of the signed-in customer on a read-only warehouse connection.

    Raises:
        SignInRequired: Nobody is signed in.
        WarehouseRefreshing: The nightly holds the warehouse (the 503 page).
    """
    from q2c.portal.access import CustomerView

    customer = require_customer(request)
    state = _state(request)
    with state.warehouse() as reader:
        yield CustomerView(reader, customer, secret=state.secret, files=state.file_roots)


def warehouse(request: Request) -> AbstractContextManager[Any]:
    """A read-only warehouse reader (`access.Reader`): for lookups not tied to a customer,
    such as sign-in; customer data is read with `customer_view`."""
    return _state(request).warehouse()


def audit(request: Request, kind: str, *, conn: sqlite3.Connection | None = None,
          **fields: Any) -> str:
    """Record a portal event with the actor, client and account filled in; return its id.

    Args:
        kind: One of `q2c.portal.events.KINDS`.
        conn: The ops store connection of the change being recorded, so the event is in
            the same transaction; a connection of its own when omitted.
        fields: `invoice_id`, `object_id`, `detail` (a small dict, no secrets), and
            `account_key` / `actor` to override the signed-in customer's.
    """
    context = portal(request)
    customer = context.customer
    values = {
        "actor": customer.actor if customer else "anonymous",
        "account_key": customer.account_key if customer else None,
        "client": context.client,
        **fields,
    }
    if customer is not None and customer.invoice_id and "invoice_id" not in fields:
        values["invoice_id"] = customer.invoice_id
    if conn is not None:
        return record_event(conn, kind, **values)
    with context.store() as own:
        return record_event(own, kind, **values)


def now() -> dt.datetime:
    """The current moment in UTC (one place, so tests and records agree on the clock)."""
    return dt.datetime.now(dt.UTC)


@contextmanager
def _store(path: Path) -> Iterator[sqlite3.Connection]:
    with connect_store(path) as conn:
        yield conn


def _state(request: Request) -> Any:
    return request.app.state.portal
