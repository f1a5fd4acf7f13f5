"""Sign-in by magic link and one-time code, received from a real SMTP server on loopback.

The portal runs with uvicorn on 127.0.0.1; mail goes through the SMTP mail transport to
the `smtp_server` fixture. Expiry is tested by moving the stored expiry into the past
(no clock is faked and nothing waits 15 minutes).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time

import pytest
from portal_support import (
    ALPHA,
    ALPHA_CONTACT,
    ALPHA_ERP_ADDRESS,
    BETA_ADDRESS,
    mail_text,
    sign_in,
    sign_in_codes,
    sign_in_links,
    smtp_settings,
    start_portal,
    wait_for_mail,
)

from q2c.opsdb import connect
from q2c.portal.events import (
    SIGN_IN_FAILED,
    SIGN_IN_REQUESTED,
    SIGNED_IN,
    SIGNED_OUT,
    events_of,
)
from q2c.portal.signin import CODE_ATTEMPTS, PER_ADDRESS, PER_CLIENT

UNKNOWN = "nobody@unknown-customer.example"


def _store(portal):
    return connect(portal.settings.ops_store)


def _request_link(client, address):
    client.get("/sign-in")
    return client.post("/sign-in", {"email": address})


def test_magic_link_is_mailed_and_a_get_does_not_redeem_it(portal, smtp_server, world):
    client = portal.client()
    answer = _request_link(client, ALPHA_CONTACT)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in/sent"

    mail = wait_for_mail(smtp_server)[0]
    assert mail.rcpt_tos == [ALPHA_CONTACT]
    text = mail_text(mail)
    assert "Anmelden für Alpha Tools GmbH" in text  # the account's language, German
    [link] = sign_in_links(text)
    assert link.startswith(portal.base_url + "/sign-in/link/")
    token = link.rpartition("/")[2]
    assert len(token) == 43  # 32 random bytes, base64url

    with _store(portal) as conn:
        stored = conn.execute("select token_hash, used_at, expires_at, created_at"
                              " from portal_signin_tokens").fetchall()
    assert len(stored) == 1 and stored[0]["used_at"] is None
    assert token not in str(tuple(stored[0]))  # only the hash is kept
    lifetime = (dt.datetime.fromisoformat(stored[0]["expires_at"])
                - dt.datetime.fromisoformat(stored[0]["created_at"]))
    assert dt.timedelta(minutes=14) < lifetime <= dt.timedelta(minutes=15)

    for _ in range(2):  # a mail scanner following the link twice
        page = client.get(link)
        assert page.status_code == 200
        assert f'action="/sign-in/link/{token}"' in page.text
    with _store(portal) as conn:
        assert conn.execute("select used_at from portal_signin_tokens").fetchone()[0] is None
    assert client.get("/invoices", follow=False).headers["location"] == "/sign-in"

    done = client.post(link)
    assert done.status_code == 303 and done.headers["location"] == "/invoices"
    listing = client.get("/invoices")
    assert listing.status_code == 200
    assert "INV-A1" in listing.text and "INV-B1" not in listing.text

    with _store(portal) as conn:
        events = events_of(conn)
    kinds = [event.kind for event in events]
    assert kinds == [SIGN_IN_REQUESTED, SIGNED_IN]
    signed_in = events[1]
    assert signed_in.account_key == world.account_keys[ALPHA]
    assert signed_in.actor == "customer:salesforce:ct1"
    assert signed_in.detail == {"method": "link"}
    assert signed_in.client == "127.0.0.1"
    assert events[0].account_key is None  # nothing about the address on the request path


def test_a_used_link_does_not_sign_in_again(portal, smtp_server):
    first = portal.client()
    _request_link(first, ALPHA_CONTACT)
    [link] = sign_in_links(mail_text(wait_for_mail(smtp_server)[0]))
    first.get(link)
    assert first.post(link).status_code == 303

    second = portal.client()
    second.get(link)
    again = second.post(link)
    assert again.status_code == 400
    assert "abgelaufen oder wurde schon benutzt" not in again.text  # anonymous: English
    assert "expired or was used already" in again.text
    assert second.get("/invoices", follow=False).status_code == 303
    with _store(portal) as conn:
        failed = events_of(conn, kind=SIGN_IN_FAILED)
    assert [event.detail for event in failed] == [{"reason": "used"}]


def test_an_expired_link_does_not_sign_in(portal, smtp_server):
    client = portal.client()
    _request_link(client, ALPHA_CONTACT)
    [link] = sign_in_links(mail_text(wait_for_mail(smtp_server)[0]))
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    with _store(portal) as conn:
        conn.execute("update portal_signin_tokens set expires_at = ?", (past,))
    client.get(link)
    answer = client.post(link)
    assert answer.status_code == 400
    assert client.get("/invoices", follow=False).headers["location"] == "/sign-in"
    with _store(portal) as conn:
        assert [e.detail for e in events_of(conn, kind=SIGN_IN_FAILED)] == [
            {"reason": "expired"}]
        assert conn.execute("select used_at from portal_signin_tokens").fetchone()[0] is None


def test_known_and_unknown_addresses_get_the_same_answer(portal, smtp_server):
    answers = {}
    for address in (ALPHA_ERP_ADDRESS, UNKNOWN):
        client = portal.client()
        answer = _request_link(client, address)
        sent = client.get("/sign-in/sent")
        answers[address] = (answer.status_code, answer.headers["location"],
                            sorted(answer.headers), sent.status_code,
                            sent.text.replace(client.csrf, "TOKEN"))
    assert answers[ALPHA_ERP_ADDRESS] == answers[UNKNOWN]

    mails = wait_for_mail(smtp_server)
    time.sleep(0.5)  # give a (wrong) second mail the time to arrive
    assert [mail.rcpt_tos for mail in smtp_server.messages] == [[ALPHA_ERP_ADDRESS]]
    assert "Alpha Tools GmbH" in mail_text(mails[0])
    with _store(portal) as conn:
        requests = conn.execute("select outcome from portal_signin_requests"
                                " order by created_at").fetchall()
        stored = conn.execute("select address_key from portal_signin_requests").fetchall()
    assert [row["outcome"] for row in requests] == ["mailed", "unknown"]
    assert all("@" not in row["address_key"] for row in stored)


def test_the_answer_does_not_wait_for_the_warehouse(world, tmp_path, smtp_server):
    """The request path never reads the warehouse: with the nightly holding the file, a
    known and an unknown address get the same answer (and no mail is sent meanwhile)."""
    warehouse = tmp_path / "held" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    shutil.copyfile(world.warehouse, warehouse)
    portal = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url=base, warehouse_path=warehouse,
        **smtp_settings(smtp_server)))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
         " print('held', flush=True); sys.stdin.read()", str(warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        codes = [_request_link(portal.client(), address).status_code
                 for address in (ALPHA_CONTACT, UNKNOWN)]
        assert codes == [303, 303]
        assert portal.client().get("/sign-in/sent").status_code == 200
        time.sleep(0.5)
        assert smtp_server.messages == []
    finally:
        holder.communicate("", timeout=30)
        portal.stop()


def test_address_is_matched_without_case_and_spaces(portal, smtp_server):
    _request_link(portal.client(), "  Anna.Berg@ALPHA-tools.example ")
    assert wait_for_mail(smtp_server)[0].rcpt_tos == [ALPHA_CONTACT]


def test_sign_in_requests_are_limited_per_address(portal, smtp_server):
    for address in (BETA_ADDRESS, UNKNOWN):
        codes = [_request_link(portal.client(), address).status_code
                 for _ in range(PER_ADDRESS + 1)]
        assert codes == [303] * PER_ADDRESS + [429]
    limited = _request_link(portal.client(), UNKNOWN)
    assert limited.status_code == 429
    assert "Too many attempts" in limited.text
    assert limited.headers["retry-after"] == "900"
    wait_for_mail(smtp_server, PER_ADDRESS)
    time.sleep(0.3)
    assert len(smtp_server.messages) == PER_ADDRESS  # the refused ones sent nothing


def test_sign_in_requests_are_limited_per_client(portal):
    client = portal.client()
    client.get("/sign-in")
    codes = [client.post("/sign-in", {"email": f"user{n}@unknown-customer.example"})
             .status_code for n in range(PER_CLIENT + 1)]
    assert codes == [303] * PER_CLIENT + [429]


def test_the_code_from_the_mail_signs_in_in_the_requesting_browser(portal, smtp_server):
    client = portal.client()
    _request_link(client, BETA_ADDRESS)
    [code] = sign_in_codes(mail_text(wait_for_mail(smtp_server)[0]))

    other = portal.client()  # another browser: it never asked for this sign-in
    other.get("/sign-in/sent")
    assert other.post("/sign-in/code", {"code": code}).status_code == 400

    client.get("/sign-in/sent")
    done = client.post("/sign-in/code", {"code": code})
    assert done.status_code == 303 and done.headers["location"] == "/invoices"
    assert "INV-B1" in client.get("/invoices").text
    # The code and the link are one sign-in: the link is used up as well.
    [link] = sign_in_links(mail_text(smtp_server.messages[0]))
    third = portal.client()
    third.get(link)
    assert third.post(link).status_code == 400
    with _store(portal) as conn:
        assert events_of(conn, kind=SIGNED_IN)[0].detail == {"method": "code"}


def test_wrong_codes_use_up_the_attempts(portal, smtp_server):
    client = portal.client()
    _request_link(client, BETA_ADDRESS)
    [code] = sign_in_codes(mail_text(wait_for_mail(smtp_server)[0]))
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"
    client.get("/sign-in/sent")
    for left in range(CODE_ATTEMPTS - 1, -1, -1):
        answer = client.post("/sign-in/code", {"code": wrong})
        assert answer.status_code == 400
        assert f"Tries left: {left}." in answer.text
    final = client.post("/sign-in/code", {"code": code})
    assert final.status_code == 400
    assert "Too many wrong codes" in final.text
    assert client.get("/invoices", follow=False).status_code == 303
    with _store(portal) as conn:
        reasons = [e.detail["reason"] for e in events_of(conn, kind=SIGN_IN_FAILED)]
    assert reasons == ["wrong_code"] * CODE_ATTEMPTS + ["code_attempts"]


def test_sign_out_ends_the_session(portal, smtp_server):
    client = sign_in(portal, smtp_server, BETA_ADDRESS)
    client.get("/invoices")
    assert client.post("/sign-out").headers["location"] == "/sign-in?signed_out=1"
    assert client.get("/invoices", follow=False).headers["location"] == "/sign-in"
    with _store(portal) as conn:
        assert [e.kind for e in events_of(conn)][-1] == SIGNED_OUT
        row = conn.execute("select end_reason from portal_sessions").fetchone()
    assert row["end_reason"] == "signed out"


@pytest.mark.parametrize(("column", "moved_by", "reason"), [
    ("last_seen_at", dt.timedelta(minutes=-31), "idle"),
    ("expires_at", dt.timedelta(seconds=-1), "expired"),
])
def test_sessions_end_when_idle_or_expired(portal, smtp_server, column, moved_by, reason):
    client = sign_in(portal, smtp_server, BETA_ADDRESS)
    assert client.get("/invoices", follow=False).status_code == 200
    with _store(portal) as conn:
        conn.execute(f"update portal_sessions set {column} = ?",
                     ((dt.datetime.now(dt.UTC) + moved_by).isoformat(),))
    assert client.get("/invoices", follow=False).headers["location"] == "/sign-in"
    with _store(portal) as conn:
        assert conn.execute("select end_reason from portal_sessions").fetchone()[0] == reason


def test_session_cookie_is_new_at_sign_in_and_http_only(portal, smtp_server):
    client = portal.client()
    _request_link(client, BETA_ADDRESS)
    [link] = sign_in_links(mail_text(wait_for_mail(smtp_server)[0]))
    client.get(link)
    client.session.cookies.set("q2c_portal_session", "planted-" + "x" * 40)
    answer = client.post(link)
    cookie = next(value for value in answer.raw.headers.getlist("set-cookie")
                  if value.startswith("q2c_portal_session="))
    assert "planted" not in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_cookies_are_secure_behind_https(world, tmp_path, smtp_server):
    portal = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url="https://billing.example.com",
        **smtp_settings(smtp_server)))
    try:
        answer = portal.client(Origin="https://billing.example.com").get("/sign-in")
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("__Host-q2c_portal_browser=")
        assert "Secure" in cookie and "HttpOnly" in cookie
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
    finally:
        portal.stop()
