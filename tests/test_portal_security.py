"""The portal's browser-facing defences: headers, CSRF, redirects, file names, escaping,
the 503 page while the nightly holds the warehouse, numbers in URLs, request logs without
link tokens, and the per-client sign-in limit (an IPv6 client by its /64)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from portal_support import (
    ALPHA_CONTACT,
    ATTACHMENT_NAME,
    MEMO,
    SCRIPT_PO,
    free_socket,
    public_ids,
    sign_in,
    smtp_settings,
    start_portal,
)

from q2c.portal.security import (
    content_disposition,
    rate_limit_client,
    redacted_path,
    safe_filename,
    safe_redirect,
)
from q2c.portal.signin import PER_CLIENT
from q2c.settings import load_settings

CHECKOUT = "https://checkout.stripe.com/"


@pytest.fixture
def alpha(portal, smtp_server):
    return sign_in(portal, smtp_server, ALPHA_CONTACT)


@pytest.mark.parametrize("target", [
    "//evil.example/", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/\\/evil.example", "\\/evil.example", "/%2f%2fevil.example", "%2f%2fevil.example",
    "/%5cevil.example", "/invoices%0d%0aLocation:%20https://evil.example",
    "/invoices\r\nLocation: https://evil.example", "/invoices\x00", "/\tevil.example",
    " /invoices", "/invoices/../../etc", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>", "https://evil.example/",
    "https://checkout.stripe.com@evil.example/", "https://checkout.stripe.com.evil.example/",
    "http://checkout.stripe.com/c/pay", "https://evil.example\\@checkout.stripe.com/",
    "https:/checkout.stripe.com/", "https://checkout.stripe.com/c/pay\n", "", None,
    "/" + "a" * 2100, "https://checkout.stripe.com\uff0fevil.example/",
    "https://checkout.stripe.com/c/pay\u2028", "https://checkout.stripe.com\uff03x",
    "https://[checkout.stripe.com/", "https://checkout.stripe.com/c/pay/cs_t\u00e9st",
])
def test_redirects_refuse_the_usual_bypasses(target):
    assert safe_redirect(target, "/", [CHECKOUT]) == "/"


@pytest.mark.parametrize("target", [
    "/invoices", "/invoices/3icM0GgM1K6jaMxHmjTHOA", "/sign-in?signed_out=1",
    "https://checkout.stripe.com/c/pay/cs_test_a1B2c3",
])
def test_redirects_keep_portal_paths_and_configured_urls(target):
    assert safe_redirect(target, "/", [CHECKOUT]) == target


@pytest.mark.parametrize(("name", "ascii_name", "exact"), [
    ("INV-A1.pdf", "INV-A1.pdf", "INV-A1.pdf"),
    ("Rechnung März.pdf", "Rechnung M_rz.pdf", "Rechnung%20M%C3%A4rz.pdf"),
    ('a"b;c.pdf', "a_b_c.pdf", "a%22b%3Bc.pdf"),
    ("../../etc/passwd", "passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini", "boot.ini"),
    ("x\r\nSet-Cookie: a=b.pdf", "xSet-Cookie_ a_b.pdf", "xSet-Cookie%3A%20a%3Db.pdf"),
    (".htaccess", "htaccess", "htaccess"),
    ("", "download", "download"),
    ("請求書.pdf", "pdf", "%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf"),
])
def test_download_names_are_safe(name, ascii_name, exact):
    header = content_disposition(name)
    assert header == f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{exact}"
    assert "\r" not in header and "\n" not in header
    assert safe_filename(name) == ascii_name


def test_security_headers_on_every_page(portal, alpha):
    ids = public_ids(alpha.get("/invoices").text)
    for path in ("/sign-in", "/invoices", f"/invoices/{ids['INV-A1']}", "/statement",
                 "/no-such-page"):
        response = alpha.get(path)
        headers = response.headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy, path
        assert "default-src 'none'" in policy and "form-action 'self'" in policy
        assert "script-src" not in policy  # no script at all
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store", path
    assert alpha.get("/no-such-page").status_code == 404
    stylesheet = alpha.get("/assets/default/3/portal.css")
    assert stylesheet.headers["cache-control"] == "public, max-age=3600"
    assert "--primary: #1f3a5f;" in stylesheet.text  # the governed theme's color


def test_files_are_attachments_that_are_not_stored(portal, alpha):
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]
    page = alpha.get(f"/invoices/{invoice}")
    links = dict(re.findall(r'href="(/invoices/[^"]+/files/[^"]+)" download>([^<]+)<', page.text))
    attachment = next(path for path, label in links.items() if "Lieferschein" in label)
    response = alpha.get(attachment)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Lieferschein _M_rz_.txt\"; "
        "filename*=UTF-8''Lieferschein%20%22M%C3%A4rz%22.txt")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].startswith("text/plain")
    assert ATTACHMENT_NAME in page.text.replace("&#34;", '"').replace("&quot;", '"')


def test_a_post_without_the_browsers_token_is_refused(portal, alpha, smtp_server):
    stranger = portal.client()
    stranger.get("/sign-in")
    forged = {"csrf_token": stranger.csrf}
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}, forged):
        refused = alpha.post("/sign-out", data, csrf=False)
        assert refused.status_code == 403
        assert "The form has expired" in refused.text or "abgelaufen" in refused.text
    assert alpha.get("/invoices", follow=False).status_code == 200  # still signed in

    before = len(smtp_server.messages)
    refused = stranger.post("/sign-in", {"email": ALPHA_CONTACT, "csrf_token": alpha.csrf},
                            csrf=False)
    assert refused.status_code == 403
    assert len(smtp_server.messages) == before


def test_a_post_from_another_site_is_refused(portal, alpha):
    alpha.session.headers["Origin"] = "https://evil.example"
    assert alpha.post("/sign-out").status_code == 403
    alpha.session.headers["Origin"] = portal.base_url
    assert alpha.post("/sign-out").status_code == 303


def test_customer_text_is_escaped(portal, alpha):
    listing = alpha.get("/invoices")
    assert SCRIPT_PO not in listing.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in listing.text
    assert "PO-2026-17" in listing.text
    invoice = public_ids(listing.text)["INV-A2"]
    page = alpha.get(f"/invoices/{invoice}")
    assert MEMO not in page.text and "<img src=x" not in page.text
    escaped = "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; Thanks &amp; &#34;regards&#34;"
    assert escaped in page.text
    assert "<script" not in page.text


def test_a_held_warehouse_answers_503(world, tmp_path, smtp_server):
    warehouse = tmp_path / "held" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    shutil.copyfile(world.warehouse, warehouse)
    portal = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url=base, warehouse_path=warehouse,
        **smtp_settings(smtp_server)))
    try:
        alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
             " print('held', flush=True); sys.stdin.read()", str(warehouse)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            busy = alpha.get("/invoices")
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "60"
            assert "Das Portal wird gerade aktualisiert" in busy.text
        finally:
            holder.communicate("", timeout=30)
        assert alpha.get("/invoices").status_code == 200
    finally:
        portal.stop()


def test_a_theme_version_that_is_not_ascii_digits_answers_404(portal):
    """`²` passes str.isdigit but not int(); 5000 nines pass str.isdigit and are beyond
    what int() reads: both are no theme version (404), the real one is served."""
    page = portal.client().get("/sign-in").text
    stylesheet = re.search(r'href="(/assets/[^/"]+/[0-9]+/portal\.css)"', page).group(1)
    theme = stylesheet.split("/")[2]

    served = portal.client().get(stylesheet)
    superscript = portal.client().get(f"/assets/{theme}/%C2%B2/portal.css")
    nines = portal.client().get(f"/assets/{theme}/{'9' * 5000}/portal.css")

    assert served.status_code == 200 and served.text.startswith(":root {")
    assert (superscript.status_code, nines.status_code) == (404, 404)


@pytest.mark.parametrize(("path", "logged"), [
    ("/documents/AbC-_123", "/documents/…"),
    ("/sign-in/link/" + "Q" * 43, "/sign-in/link/…"),
    ("/account/confirm/" + "Z" * 43, "/account/confirm/…"),
    ("/documents/", "/documents/"),
    ("/invoices/3icM0GgM1K6jaMxHmjTHOA", "/invoices/3icM0GgM1K6jaMxHmjTHOA"),
])
def test_paths_with_a_link_token_are_logged_without_it(path, logged):
    assert redacted_path(path) == logged


def test_q2c_portal_serve_logs_requests_without_link_tokens(world, tmp_path):
    """`q2c portal serve` as it runs in production: uvicorn's access log (which writes paths
    whole) is off, and the portal's request lines show `…` for the token of a per-invoice
    link, a sign-in link and an address confirmation, and no query string."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = os.environ | {"Q2C_HOME": str(tmp_path / "home"), "Q2C_PORTAL_DIR": str(
        world.portal_dir), "Q2C_WAREHOUSE": str(world.warehouse), "PYTHONUNBUFFERED": "1"}
    env.pop("Q2C_OPS_STORE", None)
    q2c = str(Path(sys.executable).parent / "q2c")
    serve = subprocess.Popen([q2c, "portal", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    link, sign_in_token, confirm_token = world.links["INV-A1"], "Q" * 43, "Z" * 43
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/sign-in", timeout=5)
                break
            except requests.ConnectionError:
                assert serve.poll() is None and time.monotonic() < deadline, "not started"
                time.sleep(0.1)
        answers = [requests.get(f"{base}{path}", timeout=10, allow_redirects=False)
                   .status_code for path in (
                       f"/documents/{link}", f"/sign-in/link/{sign_in_token}",
                       f"/account/confirm/{confirm_token}",
                       "/invoices/x/paid?session_id=cs_test_secretSession")]
    finally:
        serve.terminate()
        out, err = serve.communicate(timeout=30)

    assert answers == [200, 200, 404, 303]
    for secret in (link, sign_in_token, confirm_token, "cs_test_secretSession"):
        assert secret not in out + err
    lines = [line.split(" ", 2)[2] for line in out.splitlines() if '"GET ' in line]
    assert lines == ['127.0.0.1 "GET /sign-in HTTP/1.1" 200',
                     '127.0.0.1 "GET /documents/… HTTP/1.1" 200',
                     '127.0.0.1 "GET /sign-in/link/… HTTP/1.1" 200',
                     '127.0.0.1 "GET /account/confirm/… HTTP/1.1" 404',
                     '127.0.0.1 "GET /invoices/x/paid HTTP/1.1" 303']


@pytest.mark.parametrize(("address", "counted_as"), [
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("203.0.113.7", "203.0.113.7"),
    ("unknown", "unknown"),
])
def test_an_ipv6_client_is_counted_by_its_64(address, counted_as):
    assert rate_limit_client(address) == counted_as


def test_sign_in_from_one_ipv6_64_is_limited_together(portal):
    """The test portal trusts X-Forwarded-For from 127.0.0.1 (uvicorn's default, as
    `q2c portal serve --forwarded-allow-ips 127.0.0.1`): 20 requests from 20 addresses of
    2001:db8:7:7::/64 use up that client's 20, the 21st from yet another address of it is
    429, and a client of another /64 is still answered."""
    codes = []
    for n in range(PER_CLIENT + 1):
        client = portal.client(**{"X-Forwarded-For": f"2001:db8:7:7::{n + 1:x}"})
        client.get("/sign-in")
        codes.append(client.post("/sign-in", {"email": f"user{n}@unknown-customer.example"})
                     .status_code)
    other = portal.client(**{"X-Forwarded-For": "2001:db8:7:8::1"})
    other.get("/sign-in")

    assert codes == [303] * PER_CLIENT + [429]
    assert other.post("/sign-in", {"email": "x@unknown-customer.example"}).status_code == 303


def test_without_a_base_url_the_portal_is_at_the_address_it_is_served_at(monkeypatch, tmp_path):
    from q2c.portal.cli import _base_url_served

    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.delenv("Q2C_PORTAL_BASE_URL", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)
    default = load_settings()
    monkeypatch.setenv("Q2C_PORTAL_BASE_URL", "https://billing.example.com")
    configured = load_settings()

    assert _base_url_served(default, "127.0.0.1", 18431).portal_base_url == (
        "http://127.0.0.1:18431")
    assert _base_url_served(default, "127.0.0.1", 8080).portal_base_url == (
        "http://127.0.0.1:8080")
    assert _base_url_served(default, "0.0.0.0", 18431).portal_base_url == (
        "http://127.0.0.1:8080")
    assert _base_url_served(configured, "127.0.0.1", 18431).portal_base_url == (
        "https://billing.example.com")
