"""The portal's browser-facing defences: headers, CSRF tokens, redirects, file names.

- Every response carries a Content-Security-Policy that allows nothing but this portal's
  own stylesheet and images and forms posted to itself (and to the configured redirect
  origins, such as the payment provider), with `frame-ancestors 'none'`, plus
  `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (a magic link in the
  address bar never leaks to another site) and `Cache-Control: no-store` on everything but
  the static theme files: invoice pages and files must not stay in a shared cache.
- CSRF: each browser gets a random `browser id` cookie (HttpOnly, SameSite=Lax); the form
  token is an HMAC of it and the session id under the portal secret, so a page on another
  site can neither read nor compute it. A POST whose token does not match is refused, and
  so is one whose Origin header names another site.
- Redirects (`safe_redirect`) go only to paths of this portal or to configured URLs; the
  usual bypasses (`//host`, `/\\host`, `%2f%2f`, control characters, `javascript:`) fall
  back to the start page.
- Downloads are attachments with an ASCII file name and the exact one in RFC 5987
  `filename*`, so no name can break the header or open inline in the browser.
- Paths that carry a bearer token (a per-invoice link, a sign-in link, an address
  confirmation) are logged without it (`redacted_path`): whoever reads a log line must not
  be able to open the link.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

BROWSER_COOKIE = "q2c_portal_browser"
SECURE_BROWSER_COOKIE = "__Host-q2c_portal_browser"
NO_STORE = "no-store"
ASSET_PREFIX = "/assets/"
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32,64}")
# A local path: one leading slash, then only characters the portal's own URLs use.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~=&?-]*")
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\<>\"'`]")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")
# Paths whose rest is a bearer token: whoever has it may open the link.
TOKEN_PATHS = ("/documents/", "/sign-in/link/", "/account/confirm/")
REDACTED = "…"


def content_security_policy(form_origins: Iterable[str] = ()) -> str:
    """The page policy: own styles and images only, no script, forms to self (+ origins)."""
    form_action = " ".join(["'self'", *sorted(set(form_origins))])
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeadersMiddleware:
    """Add the security headers to every response and give each browser its id cookie."""

    def __init__(self, app: ASGIApp, *, secure: bool, form_origins: Iterable[str] = ()):
        self.app = app
        self.secure = secure
        self.cookie_name = SECURE_BROWSER_COOKIE if secure else BROWSER_COOKIE
        self.policy = content_security_policy(form_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        browser_id = _cookie(scope, self.cookie_name)
        new_id = None
        if browser_id is None or not _BROWSER_ID.fullmatch(browser_id):
            browser_id = new_id = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["browser_id"] = browser_id
        is_asset = scope.get("path", "").startswith(ASSET_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _OWN_HEADERS]
                headers += self._headers(is_asset)
                if new_id is not None:
                    headers.append((b"set-cookie", self._cookie(new_id)))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, is_asset: bool) -> list[tuple[bytes, bytes]]:
        cache = b"public, max-age=3600" if is_asset else NO_STORE.encode()
        headers = [
            (b"content-security-policy", self.policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
            (b"cache-control", cache),
        ]
        if not is_asset:
            headers.append((b"pragma", b"no-cache"))
        if self.secure:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        return headers

    def _cookie(self, value: str) -> bytes:
        parts = [f"{self.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts).encode()


_OWN_HEADERS = {
    b"content-security-policy", b"x-content-type-options", b"referrer-policy",
    b"x-frame-options", b"cross-origin-opener-policy", b"permissions-policy",
    b"strict-transport-security", b"pragma", b"cache-control",
}


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
                continue
            if name in jar:
                return jar[name].value
    return None


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser and session (see the module docstring)."""
    state = request.app.state.portal
    browser_id = getattr(request.state, "browser_id", "")
    customer = getattr(request.state, "customer", None)
    session_id = customer.session_id if customer is not None else ""
    message = f"q2c-portal-csrf-v1\x1f{browser_id}\x1f{session_id}".encode()
    return hmac.new(state.secret, message, hashlib.sha256).hexdigest()


def csrf_valid(request: Request, token: object) -> bool:
    """True for this browser's token, posted from this portal's own pages."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") not in request.app.state.portal.origins:
        logger.warning("portal: refused a form posted from %r, which is not this portal's "
                       "address %s; if customers reach the portal there, set "
                       "Q2C_PORTAL_BASE_URL to it", origin[:200],
                       ", ".join(sorted(request.app.state.portal.origins)))
        return False
    if not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(token, csrf_token(request))


def safe_redirect(target: object, base_path: str = "/",
                  allowed_urls: Iterable[str] = (), default: str = "/") -> str:
    """`target` when it is a path of this portal or a URL under an allowed prefix; else
    `default`.

    A local path must start with exactly one `/` and hold only the characters the portal's
    own URLs use: no `//host`, no backslash, no `%`-encoding, no control character or
    space, no `..` segment. An absolute URL must start with one of `allowed_urls` (each a
    prefix such as `https://checkout.stripe.com/`), with no user part and the same host,
    and be printable ASCII: a full-width `／` or a line separator (U+2028) is no part of a
    URL the portal sends anyone to, and a URL the parser refuses gives `default` too.
    """
    if not isinstance(target, str) or not target or len(target) > 2000:
        return default
    if _LOCAL_PATH.fullmatch(target) and ".." not in target.split("?")[0]:
        base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        if not base or target == base or target.startswith(base + "/"):
            return target
        return default
    if _UNSAFE_URL_CHARS.search(target) or not target.isascii():
        return default
    try:
        parts = urlsplit(target)
    except ValueError:
        return default
    if parts.scheme not in ("https", "http") or "@" in parts.netloc or not parts.hostname:
        return default
    for prefix in allowed_urls:
        allowed = urlsplit(prefix)
        if (parts.scheme == allowed.scheme and parts.netloc.lower() == allowed.netloc.lower()
                and parts.path.startswith(allowed.path or "/")):
            return target
    return default


def redacted_path(path: str) -> str:
    """The path as a log may show it: the token of a link path replaced by `…`
    (`/documents/…`); every other path as it is."""
    for prefix in TOKEN_PATHS:
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + REDACTED
    return path


def origin_of(url: str) -> str:
    """`https://host[:port]` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def safe_filename(name: object, fallback: str = "download") -> str:
    """The last path part of `name`, with unusual characters replaced (for the ASCII
    `filename=`); never empty, never starting with a dot, at most 120 characters."""
    text = str(name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(ch for ch in text if ch.isprintable())
    ascii_name = _FILENAME_UNSAFE.sub("_", text).strip(" ._")[:120]
    return ascii_name or fallback


def content_disposition(filename: object) -> str:
    """`attachment; filename="<ascii>"; filename*=UTF-8''<exact, percent-encoded>`."""
    text = str(filename or "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(ch for ch in text if ch.isprintable() and ch not in "\r\n").strip()
    ascii_name = safe_filename(text)
    exact = text.lstrip(".")[:200] or ascii_name
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(exact, safe='')}"


def download_headers(filename: object) -> Mapping[str, str]:
    return {
        "content-disposition": content_disposition(filename),
        "cache-control": NO_STORE,
        "x-content-type-options": "nosniff",
    }


def client_address(request: Request, trusted_proxies: Any = None) -> str:
    """The client's address (uvicorn rewrites it from proxy headers it trusts)."""
    return request.client.host if request.client else "unknown"


def rate_limit_client(address: str) -> str:
    """Who a per-client limit counts: an IPv6 client by its /64 (one host usually holds a
    whole /64 and could take a new address for every request), an IPv4 client (also one
    written as ::ffff:a.b.c.d) by its address; anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
