"""The customer portal as a Starlette app: `create_app(settings)`.

The app composes the routes of `ROUTE_MODULES` (each exposes `ROUTES`; it may define
`ensure_schema(conn)` for its ops store tables, `NAV` as `[(path, text key)]` for the
navigation of signed-in customers, `INVOICE_ACTIONS` as template names included in the
invoice page's actions (they see the page's `invoice`, `customer`, `t` and `csrf_token`),
and `redirect_origins(settings)` for URLs it redirects to, such as the payment provider's
checkout). Around them:

- `SecurityHeadersMiddleware` (CSP, nosniff, no-referrer, no-store, the browser cookie),
- the session middleware, which puts the signed-in `web.Customer` on `request.state`,
- error pages: 401 sends a page request to sign-in, 403/404/405/429 have their own page,
  503 says the portal is being refreshed (the nightly holds the warehouse), anything
  unexpected is logged and shown as a plain 500 page without details,
- the request log (`RequestLogMiddleware`, logger `q2c.portal.requests`): one line per
  request with the client, method, path and status, link tokens in paths replaced by `…`
  and no query string. It replaces uvicorn's access log, which writes paths whole
  (`q2c portal serve` turns that one off).

The warehouse is opened read-only for each request (DuckDB admits one writer, the
nightly); `warehouse="postgres"` reads a Postgres warehouse (Q2C_PG_*) in read-only
sessions instead.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from q2c.opsdb import connect as connect_store
from q2c.portal import security, sessions, web
from q2c.portal.access import DuckReader, FileRoots, PostgresReader
from q2c.portal.events import ensure_events
from q2c.portal.rendering import Pages
from q2c.settings import Settings
from q2c.warehouse import WarehouseBusyError
from q2c.warehouse import connect as connect_warehouse

logger = logging.getLogger(__name__)
REQUEST_LOGGER = "q2c.portal.requests"
requests_log = logging.getLogger(REQUEST_LOGGER)

# Route modules, by name; PAY and DISPUTES add theirs here.
ROUTE_MODULES = (
    "q2c.portal.signin",
    "q2c.portal.links",
    "q2c.portal.routes_pages",
    "q2c.portal.routes_pay",
    "q2c.portal.routes_disputes",
    "q2c.portal.routes_account",
)
SECRET_FILE = ".portal-secret"
MAX_BODY = 12 * 1024 * 1024


@dataclass
class PortalState:
    """What the app keeps for every request (`app.state.portal`)."""

    settings: Settings
    secret: bytes = field(repr=False)
    pages: Pages
    warehouse: Callable[[], AbstractContextManager[Any]]
    file_roots: FileRoots
    cookies: sessions.CookieSettings
    origins: frozenset[str]
    allowed_urls: tuple[str, ...] = ()
    base_path: str = "/"
    mailer: Any = None
    background: list = field(default_factory=list)


def create_app(settings: Settings, *, warehouse: str = "duckdb",
               secret: bytes | None = None, mailer: Any = None) -> Starlette:
    """The portal app for these settings.

    Args:
        warehouse: `duckdb` (the file of `settings.warehouse_path`, read-only per request)
            or `postgres` (Q2C_PG_* variables, read-only sessions).
        secret: The portal secret; read from (or created in) `<portal_dir>/.portal-secret`
            when omitted. Keep that file: it makes public ids and CSRF tokens.
        mailer: The mail transport of sign-in links; the configured mail channel when
            omitted.
    """
    modules = [importlib.import_module(name) for name in ROUTE_MODULES]
    base_url = settings.portal_base_url.rstrip("/")
    secure = urlsplit(base_url).scheme == "https"
    allowed_urls = tuple(
        url for module in modules if hasattr(module, "redirect_origins")
        for url in module.redirect_origins(settings))
    pages = Pages(settings)
    for module in modules:
        pages.nav.extend(getattr(module, "NAV", ()))
        pages.invoice_actions.extend(getattr(module, "INVOICE_ACTIONS", ()))
    state = PortalState(
        settings=settings,
        secret=secret or portal_secret(settings),
        pages=pages,
        warehouse=_warehouse_opener(settings, warehouse),
        file_roots=FileRoots(
            documents_dir=settings.documents_dir,
            einvoice_dir=_local_dir(settings.einvoice_target),
            portal_store=settings.portal_store,
            attachments_dir=_local_dir(settings.attachments_repository),
        ),
        cookies=sessions.CookieSettings(secure=secure),
        origins=frozenset({security.origin_of(base_url)}),
        allowed_urls=allowed_urls,
        mailer=mailer,
    )
    with connect_store(settings.ops_store) as conn:
        ensure_events(conn)
        sessions.ensure_sessions(conn)
        for module in modules:
            if hasattr(module, "ensure_schema"):
                module.ensure_schema(conn)
    routes = [route for module in modules for route in module.ROUTES]
    form_origins = {security.origin_of(url) for url in allowed_urls}
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestLogMiddleware),
            Middleware(security.SecurityHeadersMiddleware, secure=secure,
                       form_origins=form_origins),
            Middleware(SessionMiddleware),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        max_body_size=MAX_BODY,
    )
    app.state.portal = state
    return app


def portal_secret(settings: Settings) -> bytes:
    """The portal secret: 32 random bytes in `<portal_dir>/.portal-secret`, made once."""
    path = Path(settings.portal_store) / SECRET_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
    secret = path.read_bytes()
    if len(secret) < 32:
        raise ValueError(f"the portal secret {path} is shorter than 32 bytes: delete it to "
                         "make a new one (signed-in customers sign in again)")
    return secret


class RequestLogMiddleware:
    """Log each request once it is answered: `<client> "<METHOD> <path> HTTP/<v>" <status>`.

    The path is `security.redacted_path` of it (no link token) and the query string is
    left out, so the log holds nothing that opens a link. A request that fails is logged
    with 500 before the error page is made.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_noting_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            client = scope.get("client")
            requests_log.info('%s "%s %s HTTP/%s" %d', client[0] if client else "-",
                              scope.get("method", "?"),
                              security.redacted_path(scope.get("path", "")),
                              scope.get("http_version", "1.1"), status[0])


class SessionMiddleware:
    """Put the customer of the request's session cookie on `request.state.customer`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        portal = scope["app"].state.portal
        state = scope.setdefault("state", {})
        state["customer"] = None
        if not scope.get("path", "").startswith(security.ASSET_PREFIX):
            cookie = security._cookie(scope, portal.cookies.name)
            if cookie:
                with connect_store(portal.settings.ops_store) as conn:
                    state["customer"] = sessions.load_session(conn, cookie, web.now())
        await self.app(scope, receive, send)


def _warehouse_opener(settings: Settings, kind: str) -> Callable[[], AbstractContextManager]:
    if kind == "duckdb":
        @contextmanager
        def duck() -> Iterator[DuckReader]:
            if not Path(settings.warehouse_path).is_file():
                logger.error("portal: the warehouse %s does not exist yet; run the nightly",
                             settings.warehouse_path)
                raise web.WarehouseRefreshing()
            try:
                opened = connect_warehouse(settings.warehouse_path, read_only=True)
                conn = opened.__enter__()
            except WarehouseBusyError:
                logger.info("portal: the warehouse %s is held by the nightly; answered 503",
                            settings.warehouse_path)
                raise web.WarehouseRefreshing() from None
            try:
                yield DuckReader(conn)
            finally:
                opened.__exit__(None, None, None)
        return duck
    if kind == "postgres":
        from q2c.warehouse_postgres import PostgresTarget, PostgresWarehouseError

        target = PostgresTarget.from_env()

        @contextmanager
        def postgres() -> Iterator[PostgresReader]:
            try:
                conn = target.connect()
            except PostgresWarehouseError as exc:
                logger.error("portal: %s", exc)
                raise web.WarehouseRefreshing() from None
            try:
                conn.set_session(readonly=True, autocommit=True)
                yield PostgresReader(conn)
            finally:
                conn.close()
        return postgres
    raise ValueError(f"portal warehouse {kind!r} is unknown: use duckdb or postgres")


def _local_dir(location: str) -> Path | None:
    return None if "://" in location else Path(location)


_ERROR_PAGES = {
    403: ("error_forbidden", "error.html"),
    404: ("error_not_found", "error.html"),
    405: ("error_method", "error.html"),
    413: ("error_too_large", "error.html"),
    429: ("error_rate_limited", "error.html"),
    503: ("error_refreshing", "error.html"),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401:
        if request.method in ("GET", "HEAD"):
            return RedirectResponse("/sign-in", status_code=303)
        return _error_page(request, 401, "error_signed_out")
    key, _ = _ERROR_PAGES.get(exc.status_code, ("error_general", "error.html"))
    response = _error_page(request, exc.status_code, key)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("portal: %s %s failed", request.method,
                 security.redacted_path(request.url.path),
                 exc_info=(type(exc), exc, exc.__traceback__))
    return _error_page(request, 500, "error_general")


def _error_page(request: Request, status: int, key: str) -> Response:
    with contextlib.suppress(Exception):
        return web.render(request, "error.html", status_code=status, message_key=key,
                          status=status)
    return Response("The portal cannot show this page right now.", status_code=status,
                    media_type="text/plain")
