"""The cross-customer walk: every route of the portal, called by one customer with another
customer's ids, answers 404 (or shows only the caller's own data).

`WALK` has one entry per route (method and path as the app declares it). Each entry says
what the route must do when called by the walker with foreign ids:

- NOT_FOUND: the route takes an id; given another customer's, it answers 404.
- OWN: the route lists the caller's data; the page holds nothing of the other customer.
- PUBLIC: the route is open to anyone (sign-in, theme files); it shows no customer data.

The walk runs twice: as Alpha (account session) against Beta's ids, and as Alpha's INV-A1
link (a per-invoice session) against Alpha's own INV-A2, which that link must not show.
`test_every_route_is_in_the_walk` fails when a route is added without joining the walk:
add its entry here (a step gets the `Walker`: `w.caller` is the signed-in client, `w.owner`
a client signed in as the owner of the foreign ids, who can create objects first, and
`w.ids` the foreign public ids, `invoice` and `document`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import requests
from portal_disputes_support import (
    walk_confirmation_token,
    walk_owner_dispute,
    walk_post_dispute,
)
from portal_support import (
    ALPHA_CONTACT,
    ATTACHMENT_NAME,
    BETA_ADDRESS,
    GAMMA_ADDRESS,
    SECOND_ERP_PDF,
    PortalClient,
    RunningPortal,
    mail_text,
    public_ids,
    sign_in,
    sign_in_links,
    smtp_settings,
    start_portal,
    two_erp_warehouse,
)
from starlette.routing import Route

NOT_FOUND = "not_found"
OWN = "own"
PUBLIC = "public"


@dataclass
class Walker:
    portal: RunningPortal
    caller: PortalClient
    owner: PortalClient
    ids: dict[str, str]
    forbidden: tuple[str, ...]
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    expect: str
    call: Callable[[Walker], requests.Response | list[requests.Response]]


def _foreign_file(w: Walker) -> list[requests.Response]:
    own_invoice = w.extra["own_invoice"]
    return [
        w.caller.get(f"/invoices/{w.ids['invoice']}/files/{w.ids['document']}"),
        w.caller.get(f"/invoices/{own_invoice}/files/{w.ids['document']}"),
        w.caller.get(f"/invoices/{w.ids['invoice']}/files/{w.extra['own_document']}"),
    ]


def _foreign_sign_in_link(w: Walker) -> requests.Response:
    """The owner's sign-in link, already used: it must not change whose session this is."""
    response = w.caller.post(f"/sign-in/link/{w.extra['owner_sign_in_token']}")
    assert response.status_code == 400
    return w.caller.get("/invoices")


WALK: dict[tuple[str, str], Step] = {
    ("GET", "/"): Step(OWN, lambda w: w.caller.get("/")),
    ("GET", "/invoices"): Step(OWN, lambda w: w.caller.get("/invoices")),
    ("GET", "/invoices/{invoice}"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/invoices/{w.ids['invoice']}")),
    ("GET", "/invoices/{invoice}/files/{document}"): Step(NOT_FOUND, _foreign_file),
    ("GET", "/credit-notes"): Step(OWN, lambda w: w.caller.get("/credit-notes")),
    ("GET", "/payments"): Step(OWN, lambda w: w.caller.get("/payments")),
    ("GET", "/statement"): Step(OWN, lambda w: w.caller.get("/statement")),
    ("GET", "/assets/{theme}/{version}/{name}"): Step(
        PUBLIC, lambda w: w.caller.get("/assets/default/3/portal.css")),
    ("GET", "/sign-in"): Step(PUBLIC, lambda w: w.caller.get("/sign-in")),
    ("POST", "/sign-in"): Step(
        PUBLIC, lambda w: w.caller.post("/sign-in", {"email": "x@unknown.example"},
                                        follow=True)),
    ("GET", "/sign-in/sent"): Step(PUBLIC, lambda w: w.caller.get("/sign-in/sent")),
    ("POST", "/sign-in/code"): Step(
        PUBLIC, lambda w: w.caller.post("/sign-in/code", {"code": "00000000"})),
    ("GET", "/sign-in/link/{token}"): Step(
        PUBLIC, lambda w: w.caller.get(f"/sign-in/link/{w.extra['owner_sign_in_token']}")),
    ("POST", "/sign-in/link/{token}"): Step(PUBLIC, _foreign_sign_in_link),
    # Per-invoice links are bearer links (whoever has the mail may open the invoice); a
    # revoked one of the owner opens nothing.
    ("GET", "/documents/{token}"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/documents/{w.extra['revoked_link']}")),
    ("POST", "/documents/{token}"): Step(
        NOT_FOUND, lambda w: w.caller.post(f"/documents/{w.extra['revoked_link']}")),
    # Disputes (account sessions only) and the settings; confirmation links are bearer
    # links of their address and show that address only.
    ("GET", "/invoices/{invoice}/dispute"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/invoices/{w.ids['invoice']}/dispute")),
    ("POST", "/invoices/{invoice}/dispute"): Step(NOT_FOUND, walk_post_dispute),
    ("GET", "/disputes/{dispute}"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/disputes/{walk_owner_dispute(w)}")),
    ("GET", "/disputes/{dispute}/attachment"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/disputes/{walk_owner_dispute(w)}/attachment")),
    ("GET", "/account"): Step(OWN, lambda w: w.caller.get("/account")),
    ("POST", "/account/billing-email"): Step(
        OWN, lambda w: w.caller.post("/account/billing-email",
                                     {"email": "walk@own.example", "consent": "yes"},
                                     follow=True)),
    ("POST", "/account/delivery"): Step(
        OWN, lambda w: w.caller.post("/account/delivery",
                                     {"preference": "email", "consent": "yes"}, follow=True)),
    ("GET", "/account/confirm/{token}"): Step(
        PUBLIC, lambda w: w.caller.get(
            f"/account/confirm/{walk_confirmation_token(w, confirmed=False)}")),
    ("POST", "/account/confirm/{token}"): Step(
        NOT_FOUND, lambda w: w.caller.post(
            f"/account/confirm/{walk_confirmation_token(w, confirmed=True)}")),
    # Payment: a foreign invoice is 404 before anything reaches the payment provider.
    ("POST", "/invoices/{invoice}/pay"): Step(
        NOT_FOUND, lambda w: w.caller.post(f"/invoices/{w.ids['invoice']}/pay",
                                           {"amount": "1.00"})),
    ("GET", "/invoices/{invoice}/paid"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/invoices/{w.ids['invoice']}/paid")),
    ("GET", "/invoices/{invoice}/cancelled"): Step(
        NOT_FOUND, lambda w: w.caller.get(f"/invoices/{w.ids['invoice']}/cancelled")),
    # Last: it ends the walker's session.
    ("POST", "/sign-out"): Step(PUBLIC, lambda w: w.caller.post("/sign-out", follow=True)),
}


def route_keys(app) -> set[tuple[str, str]]:
    keys = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r} is not a plain Route: add it to the walk"
        for method in route.methods or ():
            if method != "HEAD":
                keys.add((method, route.path))
    return keys


def test_every_route_is_in_the_walk(portal):
    missing = route_keys(portal.app) - set(WALK)
    assert not missing, f"routes missing from WALK in tests/test_portal_access.py: {missing}"
    stale = set(WALK) - route_keys(portal.app)
    assert not stale, f"WALK names routes the app does not have: {stale}"


def _files(client: PortalClient, invoice_public: str) -> list[str]:
    page = client.get(f"/invoices/{invoice_public}")
    return re.findall(rf'/invoices/{invoice_public}/files/([A-Za-z0-9_-]{{22}})', page.text)


def _used_sign_in_token(portal, smtp_server, address) -> tuple[PortalClient, str]:
    client = sign_in(portal, smtp_server, address)
    [link] = sign_in_links(mail_text(smtp_server.messages[-1]))
    return client, link.rpartition("/")[2]


def _revoked_link(portal, world, number) -> str:
    from q2c.opsdb import connect
    from q2c.portal.links import revoke_link

    with connect(portal.settings.ops_store) as conn:
        revoke_link(conn, world.portal_dir, world.links[number], by="walk")
    return world.links[number]


def _walk(w: Walker) -> None:
    for key, step in WALK.items():
        result = step.call(w)
        for response in result if isinstance(result, list) else [result]:
            where = f"{key[0]} {key[1]} -> {response.request.method} {response.url}"
            leaked = [text for text in w.forbidden if text in response.text]
            assert not leaked, f"{where} shows {leaked}"
            if step.expect == NOT_FOUND:
                assert response.status_code == 404, f"{where}: {response.status_code}"
            elif step.expect == OWN:
                assert response.status_code in (200, 404), f"{where}: {response.status_code}"
            else:
                assert response.status_code in (200, 400, 404, 429), where


def test_alpha_cannot_reach_beta(portal, smtp_server, world):
    beta, beta_token = _used_sign_in_token(portal, smtp_server, BETA_ADDRESS)
    beta_invoice = public_ids(beta.get("/invoices").text)["INV-B1"]
    [beta_document] = _files(beta, beta_invoice)
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    alpha_invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]
    alpha_document = _files(alpha, alpha_invoice)[0]
    walker = Walker(
        portal, caller=alpha, owner=beta,
        ids={"invoice": beta_invoice, "document": beta_document},
        forbidden=("INV-B1", "INV-B2", "Beta Foods"),
        extra={"own_invoice": alpha_invoice, "own_document": alpha_document,
               "owner_sign_in_token": beta_token,
               "revoked_link": _revoked_link(portal, world, "INV-B1")})
    # The caller's own pages work before the walk (the walk would pass on an empty page).
    assert "INV-A1" in alpha.get("/invoices").text
    assert alpha.get(f"/invoices/{alpha_invoice}/files/{alpha_document}").status_code == 200
    _walk(walker)


def test_an_invoice_link_reaches_nothing_but_its_invoice(portal, smtp_server, world):
    beta = sign_in(portal, smtp_server, BETA_ADDRESS)
    [beta_document] = _files(beta, public_ids(beta.get("/invoices").text)["INV-B1"])
    alpha, alpha_token = _used_sign_in_token(portal, smtp_server, ALPHA_CONTACT)
    ids = public_ids(alpha.get("/invoices").text)
    own_document = _files(alpha, ids["INV-A1"])[0]
    link_client = portal.client()
    link_client.get(f"/documents/{world.links['INV-A1']}")
    opened = link_client.post(f"/documents/{world.links['INV-A1']}")
    assert opened.headers["location"] == f"/invoices/{ids['INV-A1']}"
    assert "INV-A1" in link_client.get("/invoices").text
    walker = Walker(
        portal, caller=link_client, owner=alpha,
        ids={"invoice": ids["INV-A2"], "document": beta_document},
        forbidden=("INV-A2", "INV-A3", "INV-A4", "CN-A1", "INV-B1"),
        extra={"own_invoice": ids["INV-A1"], "own_document": own_document,
               "owner_sign_in_token": alpha_token,
               "revoked_link": _revoked_link(portal, world, "INV-B1")})
    for path in ("/credit-notes", "/payments", "/statement"):
        assert link_client.get(path).status_code == 404
    _walk(walker)


def test_a_second_erps_invoice_with_the_same_id_and_number_shares_no_file(
        world, tmp_path, smtp_server, tmp_path_factory, caplog):
    """The tester's two-ERP case: Gamma's netsuite invoice has Alpha's id `a1` and number
    INV-A1, and its PDF is in the document manifest under `a1` / `INV-A1`, newer than
    Alpha's. The manifest cannot say whose a row is, so neither INV-A1 is offered a
    manifest file: Alpha gets the two files published to the portal store for its INV-A1
    (the PDF, 'INV-A1.pdf', and the delivery note), Gamma's INV-A1 page offers nothing, and
    Gamma's PDF is never served to Alpha."""
    warehouse = two_erp_warehouse(world, tmp_path_factory)
    portal = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url=base, warehouse_path=warehouse,
        **smtp_settings(smtp_server)))
    try:
        alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
        a1 = public_ids(alpha.get("/invoices").text)["INV-A1"]
        downloads = [alpha.get(f"/invoices/{a1}/files/{document}")
                     for document in _files(alpha, a1)]
        gamma = sign_in(portal, smtp_server, GAMMA_ADDRESS)
        gamma_ids = public_ids(gamma.get("/invoices").text)
        gamma_files = _files(gamma, gamma_ids["INV-A1"])
    finally:
        portal.stop()

    assert all(SECOND_ERP_PDF not in d.content for d in downloads)
    # Both files were published in the same second: the store lists them in either order.
    pdf, note = sorted(downloads, key=lambda d: not d.content.startswith(b"%PDF"))
    assert [(d.status_code, d.content) for d in (pdf, note)] == [
        (200, world.pdfs["INV-A1"]), (200, b"Geliefert am 9. Februar.\n")]
    assert 'filename="INV-A1.pdf"' in pdf.headers["content-disposition"]
    assert note.headers["content-disposition"].endswith(quote(ATTACHMENT_NAME, safe=""))
    assert sorted(gamma_ids) == ["INV-A1", "INV-C1", "INV-C2"]
    assert gamma_files == []
    assert any("2 warehouse invoices (of different ERPs) have this id and number"
               in record.getMessage() for record in caplog.records)
