"""The Sitecore connector against a local Experience Edge and Layout Service.

The content tree (tests/sitecore_server.py), counted by hand: under the root folder, a
`Sample Item` page (not a q2c template), the e-invoicing block (en, version 2, no
workflow), the Dutch late-payment legal text (en version 3 and de-DE version 1, in the
Sample Workflow's Approved state; a version 4 draft of en in master), the account-team
block (en, version 5, variants green, red and purple), the hostile block (en, version 1)
and a price-change block in fr-FR awaiting approval. With languages en and de-DE the
search finds 7 language versions (folder and sample item included) and the server pages
by 2, so a listing takes 4 pages; it names 7 q2c items: 5 pages, plus the mapped variants
green and red of the account-team block (purple is not mapped).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from provider_servers import running
from sitecore_server import (
    ACCOUNT_TEAM_DEFAULT,
    ACCOUNT_TEAM_GREEN,
    ACCOUNT_TEAM_ID,
    AWAITING_ID,
    E_INVOICING_ID,
    GRAPHQL_PATH,
    HOSTILE_BODY,
    HOSTILE_ID,
    LATE_PAYMENT_DE,
    LATE_PAYMENT_EN,
    LATE_PAYMENT_EN_DRAFT,
    LATE_PAYMENT_ID,
    LAYOUT_PATH,
    ROOT_ID,
    ROOT_PATH,
    WELCOME_ID,
    SitecoreServer,
    fixture,
    webhook_body,
)

from q2c.content.cms.base import CmsError, CmsNotFound, CmsUnavailable, EventRejected
from q2c.content.cms.sitecore import SitecoreConnector
from q2c.content.cms.store import CmsStore
from q2c.content.cms.sync import sync
from q2c.content.registry import load_registry
from q2c.sources.connectors.http import RetryPolicy

SECRET = "whsec-3f0a9c1e-sitecore"
VARIANTS = "green=segment:enterprise;red=country:DE|AT"


class Sleeps(list):
    """Stands in for time.sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server():
    yield from running(SitecoreServer(page_size=2))


@pytest.fixture
def sleeps():
    return Sleeps()


def connect(server: SitecoreServer, sleeps: Sleeps, **env: str) -> SitecoreConnector:
    values = {
        "Q2C_SITECORE_EDGE_URL": server.url,
        "Q2C_SITECORE_API_KEY": server.token,
        "Q2C_SITECORE_ROOT_PATH": ROOT_PATH,
        "Q2C_SITECORE_LANGUAGES": "en,de-DE",
        "Q2C_SITECORE_VARIANTS": VARIANTS,
        "Q2C_SITECORE_WEBHOOK_SECRET": SECRET,
        "Q2C_SITECORE_PAGE_SIZE": "2",
    }
    values.update(env)
    return SitecoreConnector.from_env(
        env=values, sleep=sleeps, retry=RetryPolicy(max_attempts=4, base_delay=0.5))


@pytest.fixture
def sitecore(server, sleeps):
    return connect(server, sleeps)


def _refs(pages) -> set[tuple[str, str, str, bool]]:
    return {(r.external_id, r.locale, r.source_version, r.deleted)
            for page in pages for r in page.items}


ALL_ITEMS = {
    (E_INVOICING_ID, "en", "2", False),
    (LATE_PAYMENT_ID, "en", "3", False),
    (LATE_PAYMENT_ID, "de-DE", "1", False),
    (ACCOUNT_TEAM_ID, "en", "5", False),
    (f"{ACCOUNT_TEAM_ID}:green", "en", "5", False),
    (f"{ACCOUNT_TEAM_ID}:red", "en", "5", False),
    (HOSTILE_ID, "en", "1", False),
}


# listing changes


def test_changes_are_listed_across_edge_pages_with_its_cursors(server, sitecore, caplog):
    caplog.set_level(logging.WARNING)

    pages = list(sitecore.changes_since(None))

    assert [page.has_more for page in pages] == [True, True, True, False]
    assert _refs(pages) == ALL_ITEMS
    searches = [s.body for s in server.data_requests(GRAPHQL_PATH)
                if "search(" in s.body["query"]]
    # Edge cursors are base64 offsets: "Mg==" after 2 results, "NA==" after 4, "Ng==" after 6.
    assert [s["variables"]["after"] for s in searches] == [None, "Mg==", "NA==", "Ng=="]
    where = searches[0]["query"]
    assert '{ name: "_path", value: "' + ROOT_ID + '", operator: CONTAINS }' in where
    assert '"_language", value: "de-DE"' in where
    assert "purple" in caplog.text and "Q2C_SITECORE_VARIANTS" in caplog.text
    # Within a page, oldest first: the account-team block (2 Dec) before e-invoicing (3 Dec).
    assert [r.external_id for r in pages[1].items][-1] == E_INVOICING_ID


def test_a_second_listing_names_only_what_changed_and_what_is_gone(server, sitecore):
    *_, last = sitecore.changes_since(None)
    hostile = server.published[(HOSTILE_ID, "en")]
    hostile.version, hostile.fields["__Updated"] = 2, "20261206T090000Z"
    hostile.layout["sitecore"]["route"]["itemVersion"] = 2
    server.remove(LATE_PAYMENT_ID, "de-DE")

    pages = list(sitecore.changes_since(last.cursor))

    assert _refs(pages) == {(HOSTILE_ID, "en", "2", False),
                            (LATE_PAYMENT_ID, "de-DE", "1", True)}
    *_, final = pages
    assert list(sitecore.changes_since(final.cursor))[-1].items == ()


def test_a_listing_resumes_from_a_cursor_taken_mid_way(sitecore):
    first = next(iter(sitecore.changes_since(None)))

    rest = list(sitecore.changes_since(first.cursor))

    assert len(rest) == 3
    assert _refs([first, *rest]) == ALL_ITEMS


def test_a_cursor_from_elsewhere_is_refused_with_what_to_do(sitecore):
    with pytest.raises(CmsError, match="list again from the start"):
        list(sitecore.changes_since("2026-12-04T10:15:00Z"))


def test_the_search_answer_has_the_shape_of_the_recorded_edge_answer(server):
    recorded = fixture("edge-search-dictionary-single-page.json")["data"]["search"]
    paged = fixture("edge-site-dictionary-paged.json")["multipage"]["page1"]
    recorded_page_info = paged["data"]["site"]["siteInfo"]["dictionary"]["pageInfo"]
    query = ('query Q($first: Int!, $after: String) { search(where: { AND: [ { name: '
             f'"_path", value: "{ROOT_ID}", operator: CONTAINS }} ] }}, first: $first, '
             'after: $after) { total pageInfo { hasNext endCursor } results { id } } }')

    answer = server.graphql({"query": query, "variables": {"first": 2, "after": None}})

    search = answer["data"]["search"]
    assert set(search) == set(recorded)
    assert set(search["pageInfo"]) == set(recorded["pageInfo"]) == set(recorded_page_info)
    assert search["pageInfo"] == {"endCursor": "Mg==", "hasNext": True}


# fetching items


def test_an_approved_legal_text_comes_with_its_locale_version_status_and_approver(sitecore):
    item = sitecore.fetch(LATE_PAYMENT_ID, "de-DE")

    assert (item.source, item.external_id, item.locale) == ("sitecore", LATE_PAYMENT_ID,
                                                            "de-DE")
    assert item.source_version == "1"
    assert item.status == "approved"
    assert item.source_status == (
        "published; workflow state {FCA998C5-0CC3-4F91-94D8-0A4E6CAECE88}")
    assert (item.kind, item.content_id, item.case, item.placement) == (
        "legal", "late_payment_sc", "late_payment", None)
    assert dict(item.targeting) == {"country": ("NL",)}
    assert item.approved_by == "sitecore\\legal.reviewer"
    assert item.approved_at == dt.datetime(2026, 12, 4, 11, 15, tzinfo=dt.UTC)
    assert item.title == "Zahlungsverzug (NL)"
    assert item.body == LATE_PAYMENT_DE.encode()
    assert sitecore.fetch(LATE_PAYMENT_ID, "en").source_version == "3"


def test_the_body_is_found_depth_first_in_the_recorded_layout(sitecore):
    recorded = fixture("layout-service-route-normal-mode.json")["sitecore"]["route"]
    jumbotron = recorded["placeholders"]["main"][0]["placeholders"]["page-header"][0]

    item = sitecore.fetch(E_INVOICING_ID, "en")

    assert item.body == jumbotron["fields"]["body"]["value"].encode()
    # No Title field, and the body component has no heading: the page's display name.
    assert item.title == "E-invoicing"
    assert (item.status, item.source_status, item.source_version) == ("approved",
                                                                      "published", "2")
    assert (item.kind, item.placement) == ("blocks", "bottom")
    assert dict(item.targeting) == {"segment": ("mid_market", "smb")}
    assert item.approved_by == "sitecore\\marketing.editor"


def test_personalization_variants_become_targeted_items_of_one_slot(sitecore):
    default = sitecore.fetch(ACCOUNT_TEAM_ID, "en")
    green = sitecore.fetch(f"{ACCOUNT_TEAM_ID}:green", "en")
    red = sitecore.fetch(f"{ACCOUNT_TEAM_ID}:red", "en")

    assert (default.content_id, dict(default.targeting)) == (
        "account_team_sc", {"channel": ("email", "pdf")})
    assert default.body == ACCOUNT_TEAM_DEFAULT.encode()
    assert (green.external_id, green.content_id, green.metadata["slot"]) == (
        f"{ACCOUNT_TEAM_ID}:green", "account_team_sc_green", "account_team_sc")
    assert dict(green.targeting) == {"channel": ("email", "pdf"), "segment": ("enterprise",)}
    assert green.body == ACCOUNT_TEAM_GREEN.encode()
    # red has no experience of its own on the body component: its readers see the default.
    assert dict(red.targeting) == {"channel": ("email", "pdf"), "country": ("AT", "DE")}
    assert red.body == ACCOUNT_TEAM_DEFAULT.encode()
    assert {default.status, green.status, red.status} == {"approved"}


def test_a_variant_without_targeting_or_hiding_the_body_is_never_shown(server, sleeps):
    with pytest.raises(CmsError, match="Q2C_SITECORE_VARIANTS"):
        connect(server, sleeps).fetch(f"{ACCOUNT_TEAM_ID}:purple", "en")
    mapped = connect(server, sleeps, Q2C_SITECORE_VARIANTS=VARIANTS + ";purple=brand:contoso")
    with pytest.raises(CmsNotFound, match="hides the body component"):
        mapped.fetch(f"{ACCOUNT_TEAM_ID}:purple", "en")


def test_a_draft_in_editing_mode_is_never_approved(sitecore):
    recorded = fixture("layout-service-route-editing-mode.json")["sitecore"]["route"]
    recorded_body = recorded["placeholders"]["jss-main"][0]["fields"]["content"]["value"]

    draft = sitecore.fetch(WELCOME_ID, "en", version="1")

    assert (draft.status, draft.source_status) == ("draft", "editing (master, version 1)")
    assert draft.approved_by is None and draft.approved_at is None
    assert draft.body == recorded_body.encode()
    assert draft.title == "Welcome to Sitecore JSS"
    with pytest.raises(CmsNotFound, match="not on Experience Edge"):
        sitecore.fetch(WELCOME_ID, "en")


def test_a_newer_draft_is_a_version_of_its_own_and_the_published_one_stays(sitecore):
    refs = sitecore.versions(LATE_PAYMENT_ID, "en")
    draft = sitecore.fetch(LATE_PAYMENT_ID, "en", version="4")
    published = sitecore.fetch(LATE_PAYMENT_ID, "en")

    assert [ref.source_version for ref in refs] == ["3", "4"]
    assert (draft.status, draft.body) == ("draft", LATE_PAYMENT_EN_DRAFT.encode())
    assert (published.status, published.body) == ("approved", LATE_PAYMENT_EN.encode())
    with pytest.raises(CmsNotFound, match="no version 9"):
        sitecore.fetch(LATE_PAYMENT_ID, "en", version="9")


def test_published_content_not_in_a_final_state_or_from_master_is_a_draft(server, sitecore):
    awaiting = sitecore.fetch(AWAITING_ID, "fr-FR")
    server.published[(E_INVOICING_ID, "en")].layout["sitecore"]["route"][
        "databaseName"] = "master"
    from_master = sitecore.fetch(E_INVOICING_ID, "en")

    assert (awaiting.status, awaiting.locale) == ("draft", "fr-FR")
    assert awaiting.source_status == "workflow state {46DA5376-10DC-4B66-B464-AFDAA29DE84F} " \
        "(not final)"
    assert awaiting.approved_by is None
    assert (from_master.status, from_master.source_status) == (
        "draft", "editing (master, version 2)")


def test_a_removed_item_is_reported_deleted_and_cannot_be_fetched(server, sitecore):
    *_, last = sitecore.changes_since(None)
    server.remove(HOSTILE_ID, "en")

    pages = list(sitecore.changes_since(last.cursor))

    assert _refs(pages) == {(HOSTILE_ID, "en", "1", True)}
    with pytest.raises(CmsNotFound):
        sitecore.fetch(HOSTILE_ID, "en")
    with pytest.raises(CmsNotFound):
        sitecore.versions(HOSTILE_ID, "en")


def test_a_hostile_body_is_passed_on_byte_for_byte(sitecore):
    item = sitecore.fetch(HOSTILE_ID, "en")

    assert isinstance(item.body, bytes)
    assert item.body == HOSTILE_BODY.encode("utf-8")
    assert item.sha256 == hashlib.sha256(HOSTILE_BODY.encode("utf-8")).hexdigest()
    assert item.status == "approved"


def test_a_page_on_another_template_is_refused_naming_the_setting(sitecore):
    with pytest.raises(CmsError, match="Q2C_SITECORE_TEMPLATES"):
        sitecore.fetch("6B2F1C8D4E3A4F7B9CAD1E2F3A4B5C6D", "en")


# the wire


def test_429_waits_as_long_as_retry_after_says(server, sitecore, sleeps):
    server.fail(429, match=GRAPHQL_PATH, retry_after="3")

    item = sitecore.fetch(LATE_PAYMENT_ID, "en")

    assert item.source_version == "3"
    assert sleeps == [3.0]


def test_5xx_is_retried_with_backoff_and_then_reported_unavailable(server, sitecore, sleeps):
    server.fail(503, match=LAYOUT_PATH, times=2)
    assert sitecore.fetch(E_INVOICING_ID, "en").status == "approved"
    first, second = sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0

    server.fail(500, match=GRAPHQL_PATH, times=10)
    with pytest.raises(CmsUnavailable, match="gave up after 4 attempts"):
        list(sitecore.changes_since(None))


def test_a_wrong_api_key_stops_with_the_variable_to_set(server, sleeps, caplog):
    wrong = "sc-apikey-wrong-55aa"
    connector = connect(server, sleeps, Q2C_SITECORE_API_KEY=wrong)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(CmsError) as raised:
        connector.fetch(LATE_PAYMENT_ID, "en")

    message = str(raised.value)
    assert "HTTP 401" in message and "Q2C_SITECORE_API_KEY" in message
    assert wrong not in message and wrong not in caplog.text
    assert sleeps == []


def test_a_missing_setting_names_the_variables(server):
    with pytest.raises(CmsError, match="Q2C_SITECORE_API_KEY.*Q2C_SITECORE_ROOT_PATH"):
        SitecoreConnector.from_env(env={"Q2C_SITECORE_EDGE_URL": server.url})
    with pytest.raises(CmsError, match="Q2C_SITECORE_VARIANTS: 'shoe:red' in 'green=shoe:red'"):
        SitecoreConnector.from_env(env={
            "Q2C_SITECORE_EDGE_URL": server.url, "Q2C_SITECORE_API_KEY": "k",
            "Q2C_SITECORE_ROOT_PATH": ROOT_PATH, "Q2C_SITECORE_VARIANTS": "green=shoe:red"})


# publish events


def test_a_webhook_with_the_shared_secret_names_each_item_and_language(sitecore):
    body = webhook_body([
        (f"{LATE_PAYMENT_ID}-layout", "LayoutData", "Update", "en"),
        (LATE_PAYMENT_ID, "Item", "Update", "en"),
        (HOSTILE_ID, "Item", "Delete", "en"),
        ("8A0BE5B4A29B4F3C9F3D2C1B0A998877", "Dictionary", "Update", "en"),
        (LATE_PAYMENT_ID, "Item", "Update", "de-DE"),
    ], invocation="56a95d51-b2af-496d-9bf1-a4f7eea5a7cf")

    events = sitecore.verify_events({"x-q2c-webhook-secret": SECRET}, body)
    first = sitecore.verify_event({"X-Q2C-Webhook-Secret": SECRET}, body)

    assert [(e.external_id, e.locale, e.action) for e in events] == [
        (LATE_PAYMENT_ID, "en", "update"), (HOSTILE_ID, "en", "delete"),
        (LATE_PAYMENT_ID, "de-DE", "update")]
    assert {e.source for e in events} == {"sitecore"}
    assert events[0].event_id == f"56a95d51-b2af-496d-9bf1-a4f7eea5a7cf/{LATE_PAYMENT_ID}/en"
    assert (first.external_id, first.locale) == (LATE_PAYMENT_ID, "en")


@pytest.mark.parametrize("headers, why", [
    ({}, "has no X-Q2C-Webhook-Secret header"),
    ({"X-Q2C-Webhook-Secret": "whsec-guess"}, "does not match Q2C_SITECORE_WEBHOOK_SECRET"),
])
def test_a_webhook_without_the_shared_secret_is_rejected(sitecore, headers, why):
    body = webhook_body([(LATE_PAYMENT_ID, "Item", "Update", "en")])

    with pytest.raises(EventRejected, match=why):
        sitecore.verify_event(headers, body)


def test_webhooks_are_rejected_until_a_secret_is_set(server, sleeps):
    connector = connect(server, sleeps, Q2C_SITECORE_WEBHOOK_SECRET="")
    body = webhook_body([(LATE_PAYMENT_ID, "Item", "Update", "en")])

    with pytest.raises(EventRejected, match="Q2C_SITECORE_WEBHOOK_SECRET is not set"):
        connector.verify_event({"X-Q2C-Webhook-Secret": ""}, body)


def test_a_malformed_or_empty_webhook_is_rejected_naming_what(sitecore):
    headers = {"X-Q2C-Webhook-Secret": SECRET}
    bad_id = webhook_body([("not-a-guid", "Item", "Update", "en")])
    on_end = json.dumps({"rebuild": "true"}).encode()

    with pytest.raises(EventRejected, match=r"updates\[0\]\.identifier"):
        sitecore.verify_event(headers, bad_id)
    with pytest.raises(EventRejected, match="not JSON"):
        sitecore.verify_event(headers, b"<xml/>")
    assert sitecore.verify_events(headers, on_end) == []
    with pytest.raises(EventRejected, match="OnUpdate"):
        sitecore.verify_event(headers, on_end)


# through the CMS store to the registry


def test_an_approved_item_reaches_the_registry_and_a_removed_one_is_retired(
    server, sitecore, tmp_path
):
    store = CmsStore(tmp_path / "ops.sqlite", tmp_path / "cms")

    first = sync(sitecore, store, dt.datetime(2026, 12, 10, 8, 0, tzinfo=dt.UTC))
    [entry] = load_registry(cms=store).versions("late_payment_sc.de-DE")

    assert (first.status, first.checked, first.approved, first.problems) == ("ok", 7, 7, ())
    assert (entry.status, entry.kind, entry.slot, entry.version) == (
        "approved", "legal", "late_payment", 1)
    assert (entry.origin.source, entry.origin.external_id, entry.origin.source_version) == (
        "sitecore", LATE_PAYMENT_ID, "1")
    assert entry.targeting.describe() == "country=NL; language=de"
    assert entry.approved_by == "sitecore\\legal.reviewer"
    assert "Verzugszinsen" in entry.read_text()

    server.remove(LATE_PAYMENT_ID, "de-DE")
    second = sync(sitecore, store, dt.datetime(2026, 12, 12, 8, 0, tzinfo=dt.UTC))
    [retired] = load_registry(cms=store).versions("late_payment_sc.de-DE")

    assert (second.checked, second.retired) == (1, 1)
    assert (retired.status, retired.effective_to) == ("retired", dt.date(2026, 12, 11))
    [english] = load_registry(cms=store).versions("late_payment_sc.en")
    assert english.status == "approved"


def test_an_item_whose_edge_and_layout_versions_differ_is_a_problem_of_that_item(
    server, sitecore, tmp_path
):
    store = CmsStore(tmp_path / "ops.sqlite", tmp_path / "cms")
    sync(sitecore, store, dt.datetime(2026, 12, 10, 8, 0, tzinfo=dt.UTC))
    with server.lock:
        stuck = server.published[(E_INVOICING_ID, "en")]
        stuck.version = 3
        stuck.fields["__Updated"] = "20261209T090000Z"
        stuck.layout["sitecore"]["route"]["itemVersion"] = 2
    server.remove(LATE_PAYMENT_ID, "de-DE")

    result = sync(sitecore, store, dt.datetime(2026, 12, 12, 8, 0, tzinfo=dt.UTC))

    assert result.status == "ok" and result.retired == 1
    [problem] = result.problems
    assert E_INVOICING_ID in problem and "version 3 on Experience Edge and 2" in problem
    [retired] = load_registry(cms=store).versions("late_payment_sc.de-DE")
    assert retired.status == "retired"


class _AlternatingEdge(BaseHTTPRequestHandler):
    """An Experience Edge whose search cursors go A, B, A, B... and never end."""

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "Q2cRoot" in body["query"]:
            data = {"data": {"item": {"id": ROOT_ID, "path": ROOT_PATH}}}
        else:
            after = body["variables"].get("after")
            data = {"data": {"search": {"total": 2, "results": [], "pageInfo": {
                "hasNext": True, "endCursor": "QQ==" if after != "QQ==" else "Qg=="}}}}
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_edge_cursors_that_come_back_stop_the_listing_naming_the_cursor():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlternatingEdge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connector = SitecoreConnector.from_env(env={
            "Q2C_SITECORE_EDGE_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "Q2C_SITECORE_API_KEY": "k", "Q2C_SITECORE_ROOT_PATH": ROOT_PATH})
        with pytest.raises(CmsError, match="Sitecore: .*page cursor 'QQ==' again"):
            list(connector.changes_since(None))
    finally:
        server.shutdown()
        server.server_close()
