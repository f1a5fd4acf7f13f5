"""Sign-in by magic link to a billing contact's address, with a typed code as fallback.

The journey:

1. `GET /sign-in` asks for the address; `POST /sign-in` answers with the same redirect to
   `/sign-in/sent` whatever the address, after the same work: the request is rate-limited
   per address and per client (an IPv6 client by its /64), recorded (the address only as
   an HMAC) and handed to a background task. Nothing on the request path reads the
   warehouse, so neither the page nor its timing says whether the address is known.
2. The background task looks the address up among the billing contacts (the account's
   billing address in `core.dim_accounts`, and CRM contacts flagged as billing contacts;
   then `CONTACT_FINDERS`: a billing address confirmed in the portal takes the place of
   the one it replaced, `q2c.portal.contacts.billing_address_contacts`), makes one token
   (256 random bits) and one 8-digit code per account, stores only their hashes, and mails
   the links and codes through the configured mail transport. An unknown address gets no
   mail.
3. The link opens `GET /sign-in/link/<token>`, a page with one "Continue" button: mail
   scanners that follow links do not use the token. The button POSTs the token, which is
   redeemed once, within `TOKEN_LIFETIME` (15 minutes), and starts a session.
4. Or the customer types the code on `/sign-in/sent` in the same browser: `CODE_ATTEMPTS`
   tries per request, then a new link must be requested.

Every request, success, failure and sign-out is a portal event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import logging
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from q2c.delivery.addresses import mask_address
from q2c.delivery.envelope import EMAIL, Envelope
from q2c.delivery.message import IDEMPOTENCY_HEADER, message_id_for
from q2c.opsdb import connect as connect_store
from q2c.opsdb import ensure_schema as ensure_store_schema
from q2c.opsdb import transaction
from q2c.portal import security, sessions, web
from q2c.portal.events import (
    SIGN_IN_FAILED,
    SIGN_IN_REQUESTED,
    SIGNED_IN,
    SIGNED_OUT,
)

logger = logging.getLogger(__name__)

TOKEN_LIFETIME = dt.timedelta(minutes=15)
CODE_DIGITS = 8
CODE_ATTEMPTS = 5
RATE_WINDOW = dt.timedelta(minutes=15)
PER_ADDRESS = 5
PER_CLIENT = 20
REQUEST_COOKIE = "q2c_portal_signin"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_ADDRESS = re.compile(r"[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,255}")

SIGNIN_DDL = """
create table if not exists portal_signin_requests (
    request_id text primary key,
    address_key text not null,
    client text,
    created_at text not null,
    expires_at text not null,
    code_attempts integer not null default 0,
    outcome text not null default 'pending'
);
create table if not exists portal_signin_tokens (
    token_hash text primary key,
    request_id text not null,
    account_key text not null,
    contact_id text not null,
    language text not null,
    code_hash text not null,
    created_at text not null,
    expires_at text not null,
    used_at text
);
create index if not exists portal_signin_tokens_request on portal_signin_tokens (request_id);
create table if not exists portal_rate_events (
    bucket text not null,
    at text not null
);
create index if not exists portal_rate_events_bucket on portal_rate_events (bucket, at);
"""


@dataclass(frozen=True)
class Contact:
    """A billing contact an address may sign in as."""

    account_key: str
    account_name: str
    contact_id: str
    language: str


# What the ops store knows of billing contacts beyond the warehouse, each
# `finder(reader, store_conn, address, found) -> [Contact]`: given the contacts the
# warehouse gave for the address, the contacts it has. A finder may add some (a billing
# address the customer confirmed in the portal) and take some away (the address that one
# replaced); `q2c.portal.contacts` registers its finder when imported.
ContactFinder = Callable[[Any, sqlite3.Connection, str, list[Contact]], list[Contact]]
CONTACT_FINDERS: list[ContactFinder] = []


def ensure_schema(conn: sqlite3.Connection) -> None:
    ensure_store_schema(conn, SIGNIN_DDL)


def normalized_address(value: object) -> str | None:
    """The address as looked up: trimmed and lower-cased; None when it is not one."""
    text = str(value or "").strip().lower()
    return text if _ADDRESS.fullmatch(text) and len(text) <= 320 else None


def address_key(secret: bytes, address: str) -> str:
    """The address as stored: an HMAC, so the store keeps no address typed in."""
    return hmac.new(secret, b"q2c-portal-address-v1\x1f" + address.encode(),
                    hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def code_hash(secret: bytes, request_id: str, code: str) -> str:
    message = f"q2c-portal-code-v1\x1f{request_id}\x1f{code}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def find_contacts(reader: Any, store_conn: sqlite3.Connection | None,
                  address: str) -> list[Contact]:
    """The billing contacts of an address, one per account (CRM contacts first), as the
    warehouse has them and then as `CONTACT_FINDERS` change them."""
    found: list[Contact] = []
    try:
        rows = reader.rows(
            "select a.account_key, a.account_name, a.language,"
            " c.source_system || ':' || c.contact_id as contact_id"
            " from intermediate.int_crm_contacts c"
            " join core.dim_accounts a on a.crm_source_system = c.source_system"
            " and a.crm_account_id = c.account_id"
            " where coalesce(c.is_billing_contact, false) and lower(trim(c.email)) = ?"
            " order by a.account_key", (address,)) if reader.has_table(
                "intermediate", "int_crm_contacts") else []
    except Exception as exc:  # noqa: BLE001 - the account's own address still works
        logger.warning("portal sign-in: CRM billing contacts cannot be read from "
                       "intermediate.int_crm_contacts (%s); only the accounts' billing "
                       "addresses are looked up", str(exc).splitlines()[0])
        rows = []
    found += [_contact(row) for row in rows]
    rows = reader.rows(
        "select account_key, account_name, language, 'billing:' || account_key as contact_id"
        " from core.dim_accounts where lower(trim(billing_email)) = ? order by account_key",
        (address,))
    found += [_contact(row) for row in rows]
    if store_conn is not None:
        for finder in CONTACT_FINDERS:
            found = finder(reader, store_conn, address, found)
    unique: dict[str, Contact] = {}
    for contact in found:
        unique.setdefault(contact.account_key, contact)
    return list(unique.values())


def _contact(row: dict) -> Contact:
    return Contact(account_key=row["account_key"], account_name=row["account_name"] or "",
                   contact_id=row["contact_id"], language=row["language"] or "en")


# Pages -----------------------------------------------------------------------------------

async def sign_in_page(request: Request) -> Response:
    return web.render(request, "sign_in.html")


async def request_link(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    context = web.portal(request)
    address = normalized_address(form.get("email"))
    if address is None:
        return web.render(request, "sign_in.html", status_code=400,
                          error_key="signin_invalid_address", email=str(form.get("email") or ""))
    now = web.now()
    key = address_key(context.secret, address)
    reference = secrets.token_urlsafe(32)
    request_id = token_hash(reference)
    with context.store() as conn:
        _limit(conn, [f"address:{key}", _client_bucket(context.client)], now,
               {f"address:{key}": PER_ADDRESS})
        with transaction(conn):
            conn.execute(
                "insert into portal_signin_requests (request_id, address_key, client,"
                " created_at, expires_at) values (?, ?, ?, ?, ?)",
                (request_id, key, context.client, _iso(now), _iso(now + TOKEN_LIFETIME)))
            web.audit(request, SIGN_IN_REQUESTED, conn=conn, object_id=request_id[:16])
    response = RedirectResponse(
        "/sign-in/sent", status_code=303,
        background=BackgroundTask(deliver_sign_in, request.app.state.portal, request_id,
                                  address, now),
    )
    response.headers.append("set-cookie", _request_cookie(request, reference))
    return response


async def sent_page(request: Request) -> Response:
    return web.render(request, "sign_in_sent.html")


async def redeem_code(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    context = web.portal(request)
    now = web.now()
    reference = request.cookies.get(REQUEST_COOKIE, "")
    code = re.sub(r"[\s-]", "", str(form.get("code") or ""))
    with context.store() as conn:
        _limit(conn, [_client_bucket(context.client)], now, {})
        if not reference:
            return _failed(request, conn, "no_request", "signin_code_no_request")
        request_id = token_hash(reference)
        with transaction(conn):
            row = conn.execute(
                "update portal_signin_requests set code_attempts = code_attempts + 1"
                " where request_id = ? returning code_attempts, expires_at",
                (request_id,)).fetchone()
        if row is None:
            return _failed(request, conn, "no_request", "signin_code_no_request")
        if row["code_attempts"] > CODE_ATTEMPTS:
            return _failed(request, conn, "code_attempts", "signin_code_attempts")
        if now >= dt.datetime.fromisoformat(row["expires_at"]):
            return _failed(request, conn, "expired", "signin_expired")
        wanted = code_hash(context.secret, request_id, code) if code.isdigit() else ""
        with transaction(conn):
            token = conn.execute(
                "update portal_signin_tokens set used_at = ? where request_id = ?"
                " and code_hash = ? and used_at is null and expires_at > ?"
                " returning account_key, contact_id, language",
                (_iso(now), request_id, wanted, _iso(now))).fetchone()
            if token is not None:
                conn.execute("update portal_signin_tokens set used_at = ? where request_id = ?"
                             " and used_at is null", (_iso(now), request_id))
        if token is None:
            left = CODE_ATTEMPTS - row["code_attempts"]
            return _failed(request, conn, "wrong_code", "signin_code_wrong",
                           page="sign_in_sent.html", attempts_left=left)
        return _signed_in(request, conn, token, "code")


async def continue_page(request: Request) -> Response:
    token = request.path_params["token"]
    if not _TOKEN.fullmatch(token):
        web.not_found()
    return web.render(request, "sign_in_continue.html", token=token)


async def redeem_link(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    context = web.portal(request)
    token = request.path_params["token"]
    now = web.now()
    with context.store() as conn:
        _limit(conn, [_client_bucket(context.client)], now, {})
        if not _TOKEN.fullmatch(token):
            return _failed(request, conn, "unknown", "signin_link_invalid")
        with transaction(conn):
            row = conn.execute(
                "update portal_signin_tokens set used_at = ? where token_hash = ?"
                " and used_at is null and expires_at > ?"
                " returning request_id, account_key, contact_id, language",
                (_iso(now), token_hash(token), _iso(now))).fetchone()
            if row is not None:
                conn.execute("update portal_signin_tokens set used_at = ? where request_id = ?"
                             " and used_at is null", (_iso(now), row["request_id"]))
        if row is None:
            known = conn.execute(
                "select used_at from portal_signin_tokens where token_hash = ?",
                (token_hash(token),)).fetchone()
            reason = ("unknown" if known is None
                      else "used" if known["used_at"] else "expired")
            return _failed(request, conn, reason, "signin_link_invalid")
        return _signed_in(request, conn, row, "link")


async def sign_out(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    customer = getattr(request.state, "customer", None)
    response = RedirectResponse("/sign-in?signed_out=1", status_code=303)
    if customer is not None:
        with web.portal(request).store() as conn:
            sessions.end_session(conn, customer.session_id, "signed out", web.now())
            web.audit(request, SIGNED_OUT, conn=conn)
    cookies = request.app.state.portal.cookies
    response.headers.append("set-cookie", cookies.header("", max_age=0))
    return response


def _signed_in(request: Request, conn: sqlite3.Connection, row: sqlite3.Row,
               method: str) -> Response:
    state = request.app.state.portal
    current = request.cookies.get(state.cookies.name)
    cookie, customer = sessions.start_session(
        conn, account_key=row["account_key"], contact_id=row["contact_id"],
        language=row["language"], replaces=current, now=web.now())
    request.state.customer = customer
    request.state.portal_context = None
    web.audit(request, SIGNED_IN, conn=conn, detail={"method": method})
    logger.info("portal: account %s signed in by %s", customer.account_key, method)
    response = RedirectResponse("/invoices", status_code=303)
    response.headers.append("set-cookie", state.cookies.header(cookie))
    response.headers.append("set-cookie", _request_cookie(request, "", max_age=0))
    return response


def _failed(request: Request, conn: sqlite3.Connection, reason: str, message_key: str,
            page: str = "sign_in.html", **values: Any) -> Response:
    web.audit(request, SIGN_IN_FAILED, conn=conn, detail={"reason": reason})
    return web.render(request, page, status_code=400, error_key=message_key, **values)


def _client_bucket(client: str) -> str:
    """The per-client bucket: an IPv6 client counts by its /64 (`rate_limit_client`)."""
    return f"client:{security.rate_limit_client(client)}"


def _limit(conn: sqlite3.Connection, buckets: list[str], now: dt.datetime,
           limits: dict[str, int]) -> None:
    """Count this request in each bucket; 429 when one is over its limit in the window."""
    since = _iso(now - RATE_WINDOW)
    with transaction(conn):
        conn.execute("delete from portal_rate_events where at < ?", (since,))
        over = False
        for bucket in buckets:
            count = conn.execute(
                "select count(*) from portal_rate_events where bucket = ? and at >= ?",
                (bucket, since)).fetchone()[0]
            over = over or count >= limits.get(bucket, PER_CLIENT)
            conn.execute("insert into portal_rate_events (bucket, at) values (?, ?)",
                         (bucket, _iso(now)))
    if over:
        raise HTTPException(status_code=429, detail="too many sign-in attempts",
                            headers={"Retry-After": str(int(RATE_WINDOW.total_seconds()))})


def _request_cookie(request: Request, value: str, max_age: int | None = None) -> str:
    secure = request.app.state.portal.cookies.secure
    parts = [f"{REQUEST_COOKIE}={value}", "Path=/sign-in", "HttpOnly", "SameSite=Lax",
             f"Max-Age={max_age if max_age is not None else int(TOKEN_LIFETIME.total_seconds())}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


# The background task -----------------------------------------------------------------------

def deliver_sign_in(state: Any, request_id: str, address: str, requested_at: dt.datetime,
                    ) -> None:
    """Look the address up, store token and code hashes, and mail them (off the request)."""
    try:
        with connect_store(state.settings.ops_store) as conn:
            with state.warehouse() as reader:
                contacts = find_contacts(reader, conn, address)
            if not contacts:
                _set_outcome(conn, request_id, "unknown")
                logger.info("portal sign-in for %s: no billing contact; nothing sent",
                            mask_address(address))
                return
            links = []
            expires = _iso(requested_at + TOKEN_LIFETIME)
            with transaction(conn):
                for contact in contacts:
                    token = secrets.token_urlsafe(32)
                    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
                    conn.execute(
                        "insert into portal_signin_tokens (token_hash, request_id,"
                        " account_key, contact_id, language, code_hash, created_at,"
                        " expires_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
                        (token_hash(token), request_id, contact.account_key,
                         contact.contact_id, contact.language,
                         code_hash(state.secret, request_id, code), _iso(web.now()),
                         expires))
                    links.append((contact, token, code))
                _set_outcome(conn, request_id, "mailed")
        _send(state, request_id, address, links)
    except Exception:
        logger.exception("portal sign-in mail for %s failed", mask_address(address))


def _set_outcome(conn: sqlite3.Connection, request_id: str, outcome: str) -> None:
    conn.execute("update portal_signin_requests set outcome = ? where request_id = ?",
                 (outcome, request_id))


def _send(state: Any, request_id: str, address: str,
          links: list[tuple[Contact, str, str]]) -> None:
    settings = state.settings
    texts = state.pages.texts(links[0][0].language)
    base = settings.portal_base_url.rstrip("/")
    key = f"portal-signin-{request_id[:32]}"
    sender = settings.mail_from
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    minutes = int(TOKEN_LIFETIME.total_seconds() // 60)
    text_parts, html_parts = [texts["signin_mail_intro"].replace("{minutes}", str(minutes))], []
    html_parts.append(f"<p>{html.escape(text_parts[0])}</p>")
    for contact, token, code in links:
        link = f"{base}/sign-in/link/{token}"
        line = texts["signin_mail_account"].replace("{account}", contact.account_name)
        code_line = texts["signin_mail_code"].replace("{code}", code)
        text_parts.append(f"{line}\n{link}\n{code_line}")
        html_parts.append(
            f"<p>{html.escape(line)}<br><a href=\"{html.escape(link, quote=True)}\">"
            f"{html.escape(texts['signin_mail_button'])}</a><br>{html.escape(code_line)}</p>")
    text_parts.append(texts["signin_mail_ignore"])
    html_parts.append(f"<p>{html.escape(texts['signin_mail_ignore'])}</p>")

    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = texts["signin_mail_subject"].replace("{seller}", settings.seller.name)
    message["Date"] = format_datetime(web.now())
    message["Message-ID"] = message_id_for(key, domain)
    message[IDEMPOTENCY_HEADER] = key
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n\n".join(text_parts) + "\n")
    message.add_alternative("<!doctype html><html><body>" + "".join(html_parts)
                            + "</body></html>", subtype="html")
    from q2c.delivery.mail_transport import email_payload

    envelope = Envelope(
        key=key, invoice_id="", invoice_number="portal sign-in", document_id="",
        channel=EMAIL, recipient=address, payload=email_payload(message),
        filename=f"{key}.eml", content_type="message/rfc822")
    receipt = _mailer(state).send(envelope)
    logger.info("portal sign-in link for %d account(s) mailed to %s via %s", len(links),
                mask_address(address), receipt.location)


def _mailer(state: Any) -> Any:
    if state.mailer is None:
        settings = state.settings
        if settings.mail_channel == "eml":
            from q2c.delivery.mail_transport import EmlFolderTransport

            state.mailer = EmlFolderTransport(Path(settings.home) / "portal-mail")
        else:
            from q2c.invoice_delivery import mail_transport

            state.mailer = mail_transport(settings)
    return state.mailer


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


ROUTES = [
    Route("/sign-in", sign_in_page, methods=["GET"]),
    Route("/sign-in", request_link, methods=["POST"]),
    Route("/sign-in/sent", sent_page, methods=["GET"]),
    Route("/sign-in/code", redeem_code, methods=["POST"]),
    Route("/sign-in/link/{token}", continue_page, methods=["GET"]),
    Route("/sign-in/link/{token}", redeem_link, methods=["POST"]),
    Route("/sign-out", sign_out, methods=["POST"]),
]

