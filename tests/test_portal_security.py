"""The portal's browser-facing defences: headers, CSRF, redirects, file names, escaping,
and the 503 page while the nightly holds the warehouse."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from portal_support import (
    ALPHA_CONTACT,
    ATTACHMENT_NAME,
    MEMO,
    SCRIPT_PO,
    portal_world,
    public_ids,
    sign_in,
    smtp_settings,
    start_portal,
)

from q2c.portal.security import content_disposition, safe_filename, safe_redirect

CHECKOUT = "https://checkout.stripe.com/"


@pytest.fixture
def world(tmp_path_factory):
    return portal_world(tmp_path_factory)


@pytest.fixture
def portal(world, tmp_path, smtp_server):
    running = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url=base, **smtp_settings(smtp_server)))
    yield running
    running.stop()


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
    "/" + "a" * 2100,
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
