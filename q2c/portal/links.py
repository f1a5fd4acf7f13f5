"""Per-invoice links: the link of an invoice email or portal notice opens that invoice only.

The link is `<base_url>/documents/<token>`, the token `q2c.delivery.portal.PortalStore`
made when the invoice was published. `GET` shows a "Continue" page (a mail scanner that
follows the link opens nothing); the button POSTs and starts a session scoped to
`invoice:<invoice_id>` of the link's account: that invoice can be viewed, downloaded and
paid, and nothing else is listed. A signed-in customer of the same account keeps their
session and is taken to the invoice.

A link is revoked with `q2c portal revoke-link TOKEN` (or `revoke_link`): it is listed in
`portal_link_revocations`, answers 404 from then on, and the sessions opened with it end.
The link id in sessions and events is the first 32 hex digits of the token's sha256, never
the token.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from q2c.delivery.portal import PortalDocument, PortalStore
from q2c.opsdb import ensure_schema as ensure_store_schema
from q2c.opsdb import transaction
from q2c.portal import sessions, web
from q2c.portal.access import INVOICE, public_id
from q2c.portal.events import LINK_OPENED, LINK_REVOKED, SIGN_IN_FAILED, record_event

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")

LINKS_DDL = """
create table if not exists portal_link_revocations (
    link_id text primary key,
    account_key text,
    invoice_id text,
    revoked_at text not null,
    revoked_by text not null,
    reason text
);
"""


@dataclass(frozen=True)
class Revocation:
    link_id: str
    account_key: str | None
    invoice_id: str | None
    sessions_ended: int
    new: bool


def ensure_schema(conn: sqlite3.Connection) -> None:
    ensure_store_schema(conn, LINKS_DDL)


def link_id_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def token_of(value: str) -> str:
    """The token of a link or of the token itself (`https://.../documents/<token>`)."""
    text = value.strip()
    if "/" in text:
        text = urlsplit(text).path.rstrip("/").rpartition("/")[2]
    if not _TOKEN.fullmatch(text):
        raise ValueError(f"{value!r} is neither a portal link nor its token: pass the "
                         "link from the invoice email, or the part after /documents/")
    return text


def is_revoked(conn: sqlite3.Connection, token: str) -> bool:
    return conn.execute("select 1 from portal_link_revocations where link_id = ?",
                        (link_id_of(token),)).fetchone() is not None


def revoke_link(conn: sqlite3.Connection, portal_store: Path, link: str, *,
                by: str, reason: str | None = None) -> Revocation:
    """Revoke a per-invoice link and end its sessions (idempotent).

    Raises:
        ValueError: `link` is not a link or token.
    """
    ensure_schema(conn)
    sessions.ensure_sessions(conn)
    token = token_of(link)
    link_id = link_id_of(token)
    document = PortalStore(portal_store).find(token)
    account_key = document.account_key if document else None
    invoice_id = document.invoice_id if document else None
    now = web.now()
    with transaction(conn):
        cursor = conn.execute(
            "insert into portal_link_revocations (link_id, account_key, invoice_id,"
            " revoked_at, revoked_by, reason) values (?, ?, ?, ?, ?, ?)"
            " on conflict (link_id) do nothing",
            (link_id, account_key, invoice_id, now.isoformat(), by, reason))
        new = cursor.rowcount == 1
        ended = sessions.end_link_sessions(conn, link_id, now)
        if new:
            record_event(conn, LINK_REVOKED, actor=f"staff:{by}", account_key=account_key,
                         invoice_id=invoice_id, object_id=link_id,
                         detail={"reason": reason or "", "sessions_ended": ended})
    if document is None:
        logger.warning("portal link %s... names no published document; revoked anyway",
                       link_id[:8])
    logger.info("portal link %s... of invoice %s revoked by %s; %d session(s) ended",
                link_id[:8], document.invoice_number if document else "?", by, ended)
    return Revocation(link_id, account_key, invoice_id, ended, new)


def _document(request: Request, token: str) -> PortalDocument | None:
    """The published document of a live link, or None (unknown, revoked)."""
    if not _TOKEN.fullmatch(token):
        return None
    context = web.portal(request)
    document = PortalStore(context.settings.portal_store).find(token)
    if document is None:
        return None
    with context.store() as conn:
        if is_revoked(conn, token):
            return None
    return document


async def continue_page(request: Request) -> Response:
    token = request.path_params["token"]
    if _document(request, token) is None:
        web.not_found()
    return web.render(request, "link_continue.html", token=token)


async def open_link(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    token = request.path_params["token"]
    document = _document(request, token)
    context = web.portal(request)
    if document is None:
        with context.store() as conn:
            web.audit(request, SIGN_IN_FAILED, conn=conn, object_id=link_id_of(token),
                      detail={"reason": "link_invalid"})
        web.not_found()
    invoice = public_id(context.secret, INVOICE, document.account_key, document.invoice_id)
    target = f"/invoices/{invoice}"
    current = context.customer
    if (current is not None and current.is_account_scope
            and current.account_key == document.account_key):
        return web.redirect(request, target)
    language = _account_language(request, document.account_key)
    state = request.app.state.portal
    with context.store() as conn:
        cookie, customer = sessions.start_session(
            conn, account_key=document.account_key, contact_id=link_id_of(token),
            language=language, scope=f"{web.INVOICE_SCOPE_PREFIX}{document.invoice_id}",
            via=web.VIA_LINK, link_id=link_id_of(token),
            replaces=request.cookies.get(state.cookies.name), now=web.now())
        request.state.customer = customer
        request.state.portal_context = None
        web.audit(request, LINK_OPENED, conn=conn, object_id=link_id_of(token),
                  detail={"invoice_number": document.invoice_number})
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", state.cookies.header(cookie))
    return response


def _account_language(request: Request, account_key: str) -> str:
    with web.warehouse(request) as reader:
        rows = reader.rows("select language from core.dim_accounts where account_key = ?",
                           (account_key,))
    return (rows[0]["language"] if rows else None) or "en"


ROUTES = [
    Route("/documents/{token}", continue_page, methods=["GET"]),
    Route("/documents/{token}", open_link, methods=["POST"]),
]
