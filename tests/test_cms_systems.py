"""Issue 9's "done when", for each CMS: WordPress, Sitecore and AEM (cloud mode).

Every test runs once per system, against the system's local mock (tests/wp_mock_server.py,
tests/sitecore_server.py, tests/aem_server.py) through its real connector, the CMS store,
sync or reconcile, the registry (`load_registry(cms=store)`), selection and rendering:

- an approved legal text is printed on a matching invoice, and the document's selection
  record (and manifest) names the source, external id, source version and the SHA-256 of
  the text printed;
- a draft, and a newer draft of the approved text, never reach the document;
- a retirement (trash, remove, unpublish) takes effect from its day, not before;
- a hostile block body is printed sanitized, its template syntax as text;
- a change made without any event and without a change listing is caught by the
  reconcile alone.

Each `System` below authors content on its mock the way that system's editors do, and
says by hand what the approved text reads, which version the system gives it, and what the
invoice falls back to without it (the shipped text of `content/`).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import html
import json
import re
from collections.abc import Iterator

import pytest
from aem_server import BLOCK_MODEL, LEGAL_MODEL, TOKEN, AemServer, AemStore
from content_support import CONTENT_DIR, invoice
from provider_servers import running
from sitecore_server import (
    GRAPHQL_PATH,
    HOSTILE_ID,
    LATE_PAYMENT_ID,
    ROOT_PATH,
    SAMPLE_AWAITING,
    Page,
    SitecoreServer,
)
from wp_mock_server import APP_PASSWORD, USER, WordPressMockServer

from q2c.content.cms.aem import AemConfig, AemConnector, aem_client
from q2c.content.cms.base import CmsConnector
from q2c.content.cms.sitecore import SitecoreConnector
from q2c.content.cms.store import CmsStore
from q2c.content.cms.sync import reconcile, sync, sync_and_reconcile
from q2c.content.cms.wordpress import WordPressConnector
from q2c.content.registry import load_registry
from q2c.content.selection import select_content
from q2c.documents.model import InvoiceDocument
from q2c.documents.render import render_html
from q2c.settings import load_settings

UTC = dt.UTC
DAY = dt.timedelta(days=1)

# One hostile body for every system: a script, an onerror handler, a javascript: link, a
# remote image, and template syntax that must print as text.
HOSTILE = (
    '<p>Pay <a href="javascript:alert(1)">here</a> '
    '<img src="https://evil.example/t.png" onerror="alert(1)">'
    "<script>alert(document.cookie)</script>"
    " {{ config }} {% raw %}{{ doc }}{% endraw %}</p>"
)
# What the allowlist leaves of it, worked out by hand: the link keeps its text (no href,
# rel added), the image and the script go, every brace is a character reference.
HOSTILE_PRINTED = (
    '<p>Pay <a rel="noopener noreferrer">here</a>  &#123;&#123; config &#125;&#125; '
    "&#123;% raw %&#125;&#123;&#123; doc &#125;&#125;&#123;% endraw %&#125;</p>"
)
DRAFT_LEGAL = "Entwurf: zwölf Prozentpunkte über dem Basiszinssatz."
DRAFT_BLOCK = "Entwurf: Die Preise steigen ab April."


def _quiet(seconds: float) -> None:
    """No wait between retries: the mocks script no 429 or 5xx here."""


class System:
    """One CMS as its editors use it, behind its mock, with the facts counted by hand.

    Attributes:
        name: The source name.
        connector: The system's real connector, pointed at the mock.
        now: When the first sync runs.
        day: A document date on which the approved text is in force.
        entry_id: The registry id of the approved legal text.
        external_id, locale: The item in the system.
        approved_version: The version the system gives the approved text.
        approved_text: The text a document prints, as the editor wrote it.
        fallback_ref: What the invoice prints without the CMS text (shipped content).
        known_items: Items the first sync records (hand-counted from the mock's content).
        hostile_entry: The registry id of the block `author_hostile` writes.
        hostile_added: Items `author_hostile` adds (0 when it edits one already there).
    """

    name: str
    connector: CmsConnector
    now: dt.datetime
    day: dt.date
    entry_id: str
    external_id: str
    locale: str
    approved_version: str
    approved_text: str
    fallback_ref: str
    known_items: int
    hostile_entry: str
    hostile_added = 0

    def invoice(self) -> InvoiceDocument:
        raise NotImplementedError

    def author_hostile(self) -> None:
        """An approved message block with the HOSTILE body."""
        raise NotImplementedError

    def author_drafts(self) -> None:
        """A newer draft of the approved text (DRAFT_LEGAL) and a block only ever drafted
        (DRAFT_BLOCK) that would print on the invoice if it were approved."""
        raise NotImplementedError

    def retire(self) -> tuple[dt.datetime, dt.date]:
        """Retire the approved text as the system does; returns when q2c syncs next and
        the first day it must no longer print."""
        raise NotImplementedError

    def change_quietly(self) -> tuple[str, str, dt.datetime, dt.date]:
        """Publish a new approved wording with no event; returns the text, its version in
        the system, when the reconcile runs and the first day the new text is in force."""
        raise NotImplementedError

    def listings(self) -> int:
        """Change-listing requests the mock has answered so far."""
        raise NotImplementedError


# WordPress: posts in the category q2c-legal or q2c-block, labelled by q2c-* tags.

WP_LEGAL, WP_BLOCK = 2, 3


class WordPress(System):
    name = "wordpress"
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    day = dt.date(2026, 3, 10)
    entry_id = "late_payment_de.de"
    external_id = "11"
    locale = "de"
    approved_version = "13"  # post 11's newest revision in the mock
    approved_text = "Verzugszinsen: 9 Prozentpunkte über dem Basiszinssatz."
    fallback_ref = "late_payment_de@v1"
    # Posts 4, 11, 14, 15, 16, 17 and 18; 19 is in no q2c category, 20 has no q2c-id.
    known_items = 7
    hostile_entry = "fixture_notice.en"

    def __init__(self, wp: WordPressMockServer) -> None:
        self.wp = wp
        self.connector = WordPressConnector.from_env({
            "Q2C_WORDPRESS_URL": wp.url, "Q2C_WORDPRESS_USER": USER,
            "Q2C_WORDPRESS_APP_PASSWORD": APP_PASSWORD}, sleep=_quiet)

    def invoice(self) -> InvoiceDocument:
        return invoice(country="DE", language="de")

    def author_hostile(self) -> None:
        # Post 4 is the published block `fixture_notice`; an editor updates it.
        self.wp.save(4, "2026-03-05T10:00:00", content=HOSTILE)

    def author_drafts(self) -> None:
        # WordPress keeps one status per post, so a revision waiting for review is a post
        # of its own with the same q2c labels (as revision plugins make it), pending.
        self._post(40, "pending", WP_LEGAL, [
            "q2c-id:late_payment_de", "q2c-case:late_payment", "q2c-locale:de",
            "q2c-country:DE"], f"<p>{DRAFT_LEGAL}</p>\n")
        self._post(41, "draft", WP_BLOCK, ["q2c-id:price_notice", "q2c-placement:top",
                                           "q2c-locale:de"], f"<p>{DRAFT_BLOCK}</p>\n")

    def _post(self, post_id: int, status: str, category: int, tags: list[str],
              content: str) -> None:
        # The mock has no public way to create a post; its own seeding method makes one
        # in WordPress's shape.
        with self.wp.lock:
            self.wp._add(post_id, status, "2026-03-11T08:00:00", category, tags, "Entwurf",
                         content, revisions=[])

    def retire(self) -> tuple[dt.datetime, dt.date]:
        self.wp.save(11, "2026-03-20T09:00:00", status="trash")
        return dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC), dt.date(2026, 3, 20)

    def change_quietly(self) -> tuple[str, str, dt.datetime, dt.date]:
        text = "Verzugszinsen: 10 Prozentpunkte über dem Basiszinssatz."
        revision = self.wp.save(11, "2026-03-12T08:00:00", content=f"<p>{text}</p>\n")
        assert revision == 101  # the mock numbers new revisions from 101
        return text, "101", dt.datetime(2026, 3, 12, 12, 0, tzinfo=UTC), dt.date(2026, 3, 12)

    def listings(self) -> int:
        return sum(1 for seen in self.wp.requests if seen.path == "/wp-json/wp/v2/posts")


# Sitecore: pages under the q2c root on the q2c templates, published to Experience Edge.

SC_PRICE_ID = "1F2E3D4C5B6A47988796A5B4C3D2E1F0"


def _sc_body(layout: dict) -> dict:
    """The rich-text field the connector reads as the body of a content-block page."""
    return layout["sitecore"]["route"]["placeholders"]["jss-main"][0]["fields"]["content"]


class Sitecore(System):
    name = "sitecore"
    now = dt.datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
    day = dt.date(2026, 12, 10)
    entry_id = "late_payment_sc.de-DE"
    external_id = LATE_PAYMENT_ID
    locale = "de-DE"
    approved_version = "1"  # the de-DE language version is at version 1
    approved_text = "Bei Zahlungsverzug fallen gesetzliche Verzugszinsen an."
    fallback_ref = "late_payment_nl@v1"
    # E-invoicing, late payment en and de-DE, account team with its variants green and
    # red, the hostile block; the folder and the sample item are not q2c pages.
    known_items = 7
    hostile_entry = "hostile_sc.en"

    def __init__(self, server: SitecoreServer) -> None:
        self.server = server
        self.connector = SitecoreConnector.from_env(env={
            "Q2C_SITECORE_EDGE_URL": server.url, "Q2C_SITECORE_API_KEY": server.token,
            "Q2C_SITECORE_ROOT_PATH": ROOT_PATH, "Q2C_SITECORE_LANGUAGES": "en,de-DE",
            "Q2C_SITECORE_VARIANTS": "green=segment:enterprise;red=country:DE|AT",
        }, sleep=_quiet)

    @property
    def page(self) -> Page:
        return self.server.published[(LATE_PAYMENT_ID, "de-de")]

    def invoice(self) -> InvoiceDocument:
        # A Dutch buyer reading German: the de-DE text targets country NL and language de.
        return invoice(country="NL", language="de", vat_id="NL123456789B01")

    def author_hostile(self) -> None:
        with self.server.lock:
            _sc_body(self.server.published[(HOSTILE_ID, "en")].layout)["value"] = HOSTILE

    def author_drafts(self) -> None:
        with self.server.lock:
            # A new version of the German text, saved in master and not published.
            versions = self.server.master[(LATE_PAYMENT_ID, "de-de")]
            draft = copy.deepcopy(versions[1])
            draft["sitecore"]["route"]["itemVersion"] = 2
            _sc_body(draft)["value"] = f"<p>{DRAFT_LEGAL}</p>"
            versions[2] = draft
            # A block published while its workflow still awaits approval.
            block = Page(SC_PRICE_ID, f"{ROOT_PATH}/Price notice", "de-DE",
                         "Q2C Message Block", 1, {
                             "ContentId": "price_notice_sc", "Placement": "top",
                             "__Updated": "20261209T090000Z",
                             "__Updated by": "sitecore\\pricing",
                             "__Workflow state": SAMPLE_AWAITING})
            block.layout = copy.deepcopy(self.server.published[(HOSTILE_ID, "en")].layout)
            block.layout["sitecore"]["route"].update(
                itemId=SC_PRICE_ID.lower(), itemLanguage="de-DE", name="Price notice")
            _sc_body(block.layout)["value"] = f"<p>{DRAFT_BLOCK}</p>"
            self.server.published[(SC_PRICE_ID, "de-de")] = block

    def retire(self) -> tuple[dt.datetime, dt.date]:
        # Deleted, and the deletion published: Edge no longer has the language version.
        self.server.remove(LATE_PAYMENT_ID, "de-DE")
        return dt.datetime(2026, 12, 12, 8, 0, tzinfo=UTC), dt.date(2026, 12, 12)

    def change_quietly(self) -> tuple[str, str, dt.datetime, dt.date]:
        text = "Bei Zahlungsverzug fallen Verzugszinsen von neun Prozentpunkten an."
        with self.server.lock:
            page = self.page
            page.version = 2
            page.fields["__Updated"] = "20261211T090000Z"
            page.layout["sitecore"]["route"]["itemVersion"] = 2
            _sc_body(page.layout)["value"] = f"<p>{text}</p>"
        return text, "2", dt.datetime(2026, 12, 11, 12, 0, tzinfo=UTC), dt.date(2026, 12, 11)

    def listings(self) -> int:
        return sum(1 for seen in self.server.data_requests(GRAPHQL_PATH)
                   if "search(" in (seen.body or {}).get("query", ""))


# AEM as a Cloud Service: content fragments under /content/dam/q2c/<language>/.

AEM_ROOT = "/content/dam/q2c"
AEM_LEGAL = f"{AEM_ROOT}/de/legal/late-payment-de"


class Aem(System):
    name = "aem"
    now = dt.datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    day = dt.date(2026, 11, 10)
    entry_id = "late_payment_de.de"
    external_id = "legal/late-payment-de"
    locale = "de"
    approved_text = ("Bei Zahlungsverzug berechnen wir Verzugszinsen von neun Prozentpunkten "
                     "über dem Basiszinssatz.")
    fallback_ref = "late_payment_de@v1"
    known_items = 1
    hostile_entry = "pay_now.en"
    hostile_added = 1

    def __init__(self, store: AemStore, server: AemServer) -> None:
        self.store = store
        self.server = server
        self.clock = self.now
        client = aem_client(server.url, {"Q2C_AEM_TOKEN": TOKEN}, sleep=_quiet)
        self.connector = AemConnector(client, AemConfig(mode="cloud"),
                                      clock=lambda: self.clock)
        store.add(AEM_LEGAL, LEGAL_MODEL, f"<p>{self.approved_text}</p>",
                  case="late_payment", tags=("q2c:country/de",))          # 09:01
        store.publish(AEM_LEGAL, by="Legal Review")                        # 09:02
        # The working copy's version is its ETag: the id's first 8 characters, revision 1.
        self.approved_version = f"{store.fragments[AEM_LEGAL].id[:8]}-1"

    def invoice(self) -> InvoiceDocument:
        return invoice(country="DE", language="de")

    def author_hostile(self) -> None:
        path = f"{AEM_ROOT}/en/blocks/pay-now"
        self.store.add(path, BLOCK_MODEL, HOSTILE, placement="top")
        self.store.publish(path)

    def author_drafts(self) -> None:
        self.store.edit(AEM_LEGAL, f"<p>{DRAFT_LEGAL}</p>")  # PUBLISHED -> MODIFIED
        self.store.add(f"{AEM_ROOT}/de/blocks/price-notice", BLOCK_MODEL,
                       f"<p>{DRAFT_BLOCK}</p>", placement="top")  # NEW, never published

    def retire(self) -> tuple[dt.datetime, dt.date]:
        self.store.unpublish(AEM_LEGAL)
        # The Sites API says that a fragment is unpublished, not since when: from the run.
        self.clock = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
        return self.clock, dt.date(2026, 11, 20)

    def change_quietly(self) -> tuple[str, str, dt.datetime, dt.date]:
        text = ("Bei Zahlungsverzug berechnen wir Verzugszinsen von zehn Prozentpunkten über "
                "dem Basiszinssatz.")
        self.store.clock = dt.datetime(2026, 11, 11, 9, 0, tzinfo=UTC)
        self.store.edit(AEM_LEGAL, f"<p>{text}</p>")                       # 11 Nov 09:01
        self.store.publish(AEM_LEGAL, by="Legal Review")                   # 11 Nov 09:02
        self.clock = dt.datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
        version = f"{self.store.fragments[AEM_LEGAL].id[:8]}-2"
        return text, version, self.clock, dt.date(2026, 11, 11)

    def listings(self) -> int:
        return sum(1 for seen in self.server.seen("/adobe/sites/cf/fragments")
                   if seen.query.get("path") == AEM_ROOT)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("Q2C_OPS_STORE", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)
    return tmp_path / "home"


@pytest.fixture(params=["wordpress", "sitecore", "aem"])
def system(request, home, monkeypatch) -> Iterator[System]:
    monkeypatch.setenv("Q2C_CMS_SOURCES", request.param)
    if request.param == "wordpress":
        for wp in running(WordPressMockServer()):
            yield WordPress(wp)
    elif request.param == "sitecore":
        for server in running(SitecoreServer(page_size=2)):
            yield Sitecore(server)
    else:
        store = AemStore()
        server = AemServer(store).start()
        try:
            yield Aem(store, server)
        finally:
            server.stop()


@pytest.fixture
def store(system, home) -> CmsStore:
    return CmsStore.from_settings(load_settings())


def first_sync(system: System, store: CmsStore, authored: int = 0) -> None:
    """The first sync; it records the mock's q2c items and `authored` more."""
    result = sync(system.connector, store, system.now)
    assert (result.status, result.problems) == ("ok", ())
    assert result.checked == system.known_items + authored


def registry(store: CmsStore):
    return load_registry(CONTENT_DIR, cms=store)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def printed_legal(page: str, ref: str) -> str:
    """The text of the legal paragraph `ref` (`late_payment_de.de@v1`) as a reader sees it."""
    found = re.search(rf'data-legal="{re.escape(ref)}"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None, f"{ref} is not printed"
    return html.unescape(found.group(1))


def legal_ref(system: System, store: CmsStore, on: dt.date) -> str:
    (choice,) = select_content(registry(store), system.invoice(), on=on).legal
    return choice.entry.ref


def test_an_approved_legal_text_is_printed_and_its_cms_version_recorded(system, store):
    from assets.content import documents_by_cms_version
    from q2c.documents.pool import RenderedDocument, record_manifest
    from q2c.warehouse import OPS_SCHEMA, connect

    first_sync(system, store)
    ref = f"{system.entry_id}@v1"
    (choice,) = select_content(registry(store), system.invoice(), on=system.day).legal
    assert choice.entry.ref == ref

    page, selection = render_html(system.invoice(), registry(store), on=system.day)
    printed = printed_legal(page, ref)
    assert printed == system.approved_text
    expected = {"source": system.name, "external_id": system.external_id,
                "locale": system.locale, "source_version": system.approved_version,
                "sha256": sha(printed + "\n")}  # the stored text ends with one newline
    assert choice.record()["cms"] == expected
    (legal,) = [c for c in json.loads(selection.to_json())["choices"] if c["role"] == "legal"]
    assert (legal["id"], legal["version"], legal["cms"]) == (system.entry_id, 1, expected)
    assert choice.entry.file_path().read_bytes() == (printed + "\n").encode()

    settings = load_settings()
    document = RenderedDocument(
        document_id="d1", invoice_id="inv-1", invoice_number="INV-1", input_hash="i",
        content_hash="c", template_id="invoice", template_version="4", theme_id="default",
        theme_version="2", texts_id="invoice_labels", texts_version="1", language="de",
        path="INV-1.pdf", bytes=1, content_selection=selection.to_json(),
    )
    with connect(settings.warehouse_path) as conn:
        record_manifest(conn, [document], "run-1")
        (text,) = conn.execute(
            f"select content_selection from {OPS_SCHEMA}.document_manifest").fetchone()
    (kept,) = [c for c in json.loads(text)["choices"] if c["role"] == "legal"]
    assert kept["cms"] == expected
    used = documents_by_cms_version(settings, system.name)
    key = (f"{system.entry_id} v1 (item {system.external_id}, {system.locale}, version "
           f"{system.approved_version}, sha256 {expected['sha256'][:12]})")
    assert used[key] == 1


def test_a_draft_never_reaches_the_document(system, store):
    first_sync(system, store)
    before, _ = render_html(system.invoice(), registry(store), on=system.day)

    system.author_drafts()
    later = system.now + dt.timedelta(hours=1)
    result = sync(system.connector, store, later)
    assert (result.status, result.approved, result.retired) == ("ok", 0, 0)
    # Whatever draft the system shows of the approved item is recorded too, as a preview
    # would read it: q2c holds the draft, and still never prints it.
    for item_ref in system.connector.versions(system.external_id, system.locale):
        item = system.connector.fetch(system.external_id, system.locale,
                                      item_ref.source_version)
        if item.status == "draft":
            store.record(item, later)
    drafts = [(store.body_dir / v.body_file).read_text(encoding="utf-8")
              for v in store.versions(sources=[system.name], statuses=["draft"])]
    assert any(DRAFT_LEGAL in body for body in drafts)
    assert any(DRAFT_BLOCK in body for body in drafts)

    loaded = registry(store)
    assert [(e.version, e.status, e.origin.source_version)
            for e in loaded.versions(system.entry_id)] == [
        (1, "approved", system.approved_version)]
    assert not [e for e in loaded.entries if "price_notice" in e.id]
    page, selection = render_html(system.invoice(), loaded, on=system.day)
    assert page == before
    assert printed_legal(page, f"{system.entry_id}@v1") == system.approved_text
    assert "Entwurf" not in page
    assert not selection.is_preview


def test_a_retirement_takes_effect_from_its_day(system, store):
    first_sync(system, store)
    when, first_day_without = system.retire()
    results = sync_and_reconcile(system.connector, store, when)  # the nightly step
    assert [r.status for r in results] == ["ok", "ok"]
    assert sum(r.retired for r in results) == 1

    (entry,) = registry(store).versions(system.entry_id)
    assert (entry.status, entry.effective_to) == ("retired", first_day_without - DAY)
    last_day = first_day_without - DAY
    assert legal_ref(system, store, last_day) == f"{system.entry_id}@v1"
    assert legal_ref(system, store, first_day_without) == system.fallback_ref
    page, _ = render_html(system.invoice(), registry(store), on=first_day_without)
    assert system.approved_text not in page
    printed_legal(page, system.fallback_ref)
    earlier, _ = render_html(system.invoice(), registry(store), on=last_day)
    assert printed_legal(earlier, f"{system.entry_id}@v1") == system.approved_text


def test_the_change_listing_alone_sees_a_retirement(system, store):
    """A sync (changes since the cursor) retires what the system retired, without waiting
    for the reconcile: each connector says its listing shows state changes."""
    first_sync(system, store)
    when, first_day_without = system.retire()
    result = sync(system.connector, store, when)
    assert (result.status, result.checked, result.retired) == ("ok", 1, 1)
    assert legal_ref(system, store, first_day_without) == system.fallback_ref


def test_a_hostile_body_is_printed_sanitized_and_its_template_syntax_as_text(system, store):
    system.author_hostile()
    first_sync(system, store, authored=system.hostile_added)

    page, selection = render_html(system.invoice(), registry(store), on=system.day)
    ref = f"{system.hostile_entry}@v1"
    found = re.search(rf'data-block="{re.escape(ref)}"[^>]*>(.*?)</div>', page, re.S)
    assert found is not None
    assert found.group(1) == HOSTILE_PRINTED
    for executable in ("<script", "onerror", "javascript:", "evil.example"):
        assert executable not in page
    for left_out in ("<img", "{{", "{%", "href"):
        assert left_out not in found.group(1)
    assert html.unescape(found.group(1)).endswith(
        " {{ config }} {% raw %}{{ doc }}{% endraw %}</p>")
    (choice,) = [c for c in selection.blocks if c.entry.id == system.hostile_entry]
    assert choice.record()["cms"]["sha256"] == sha(HOSTILE_PRINTED + "\n")
    assert choice.entry.origin.raw_sha256 == sha(HOSTILE)


def test_a_missed_publish_event_is_caught_by_the_reconcile(system, store):
    first_sync(system, store)
    text, version, when, first_day = system.change_quietly()
    listed = system.listings()
    assert listed > 0  # the first sync listed; the reconcile below must not

    result = reconcile(system.connector, store, when)

    assert system.listings() == listed  # no change listing reached q2c
    assert (result.status, result.checked, result.new_versions, result.approved,
            result.retired) == ("ok", system.known_items, 1, 1, 0)
    assert [(v.source_version, v.status, v.version)
            for v in store.item_versions(system.name, system.external_id, system.locale)] == [
        (system.approved_version, "approved", 1), (version, "approved", 2)]
    assert [(e.version, e.origin.source_version)
            for e in registry(store).versions(system.entry_id)] == [
        (1, system.approved_version), (2, version)]
    assert legal_ref(system, store, first_day - DAY) == f"{system.entry_id}@v1"
    page, selection = render_html(system.invoice(), registry(store), on=first_day)
    assert printed_legal(page, f"{system.entry_id}@v2") == text
    (choice,) = selection.legal
    assert choice.record()["cms"]["source_version"] == version
    assert choice.record()["cms"]["sha256"] == sha(text + "\n")
