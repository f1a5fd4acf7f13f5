"""CMS content under the registry's rules, with an in-memory CMS speaking the interface.

`FakeCms` keeps item versions, a change feed (an item changed without an entry in the feed
is a missed event), items that are gone (404), and can be down; its publish events are
signed with HMAC-SHA256. Everything else is real: the SQLite ops store, the body folder,
the shipped `content/` registry, selection, rendering, the CLI, the Dagster asset and
sensor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace

import dagster as dg
import pytest
import requests
from content_support import CONTENT_DIR, invoice

from q2c.cli import main as q2c_main
from q2c.content.cms.base import (
    ChangePage,
    CmsItem,
    CmsNotFound,
    CmsUnavailable,
    EventRejected,
    ItemRef,
    PublishEvent,
)
from q2c.content.cms.events import make_event_server, serve_in_thread, take_event
from q2c.content.cms.store import CmsStore
from q2c.content.cms.sync import reconcile, sync
from q2c.content.registry import load_registry
from q2c.content.selection import select_content
from q2c.documents.render import render_html, resolve_content
from q2c.settings import load_settings

SOURCE = "wordpress"
SECRET = b"webhook-secret"
NOW = dt.datetime(2026, 2, 1, 10, 0, tzinfo=dt.UTC)
FEB_1 = dt.date(2026, 2, 1)
LEGAL_DE = "<p>Verzugszinsen: neun Prozentpunkte über dem Basiszinssatz (§ 288 BGB).</p>"


def _at(day: int, month: int = 1, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC)


def legal(version: str = "r1", body: str = LEGAL_DE, status: str = "approved",
          external_id: str = "42", **changes) -> CmsItem:
    """A German late-payment text for buyers in Germany, as WordPress would map it."""
    item = CmsItem(
        source=SOURCE, external_id=external_id, locale="de", source_version=version,
        source_status={"approved": "publish", "draft": "draft", "retired": "trash"}[status],
        status=status, kind="legal", content_id="late_payment_de", title="Verzug",
        body=body.encode(), media_type="text/html", modified_at=_at(15),
        approved_by="Legal (A. Berg)" if status == "approved" else None,
        approved_at=_at(15) if status == "approved" else None,
        targeting={"country": ("DE",)}, case="late_payment",
    )
    return replace(item, **changes)


def block(version: str = "1", body: str = "<p>Our new bank details apply from March.</p>",
          **changes) -> CmsItem:
    item = CmsItem(
        source=SOURCE, external_id="77", locale="en", source_version=version,
        source_status="publish", status="approved", kind="blocks", content_id="bank_notice",
        title="Bank notice", body=body.encode(), media_type="text/html",
        modified_at=_at(20), approved_by="Billing Ops", approved_at=_at(20), placement="top",
    )
    return replace(item, **changes)


class FakeCms:
    """An in-memory CMS implementing `CmsConnector`."""

    source = SOURCE

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], list[CmsItem]] = {}
        self.feed: list[ItemRef] = []
        self.gone: set[tuple[str, str]] = set()
        self.down: str | None = None
        self.fetches = 0

    def put(self, item: CmsItem, announce: bool = True) -> None:
        """A new version of an item; `announce=False` changes it without a feed entry."""
        key = (item.external_id, item.locale)
        self.items.setdefault(key, []).append(item)
        self.gone.discard(key)
        if announce:
            self.feed.append(ItemRef(item.external_id, item.locale, item.source_version,
                                     item.modified_at))

    def changes_since(self, cursor: str | None) -> Iterator[ChangePage]:
        start = int(cursor or 0)
        while True:
            self._check()
            refs = tuple(self.feed[start:start + 2])
            start += len(refs)
            yield ChangePage(refs, str(start), start < len(self.feed))
            if start >= len(self.feed):
                return

    def fetch(self, external_id: str, locale: str, version: str | None = None) -> CmsItem:
        self._check()
        self.fetches += 1
        key = (external_id, locale)
        if key in self.gone or key not in self.items:
            raise CmsNotFound(f"{SOURCE} item {external_id} ({locale}): 410 Gone")
        versions = self.items[key]
        if version is None:
            return versions[-1]
        return next(item for item in versions if item.source_version == version)

    def versions(self, external_id: str, locale: str) -> list[ItemRef]:
        return [ItemRef(i.external_id, i.locale, i.source_version, i.modified_at)
                for i in self.items.get((external_id, locale), [])]

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        given = {k.lower(): v for k, v in headers.items()}.get("x-fake-signature", "")
        if not hmac.compare_digest(given, sign(body)):
            raise EventRejected("X-Fake-Signature does not match the body")
        data = json.loads(body)
        content = data.get("content")
        return PublishEvent(
            source=SOURCE, external_id=data["id"], action=data["action"], received_at=NOW,
            locale=data.get("locale"), source_version=data.get("version"),
            event_id=data.get("event_id"),
            body_sha256=hashlib.sha256(content.encode()).hexdigest() if content else None,
        )

    def _check(self) -> None:
        if self.down:
            raise CmsUnavailable(self.down)


def sign(body: bytes) -> str:
    return hmac.new(SECRET, body, hashlib.sha256).hexdigest()


def event_body(**fields) -> bytes:
    return json.dumps({"action": "publish", **fields}).encode()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("Q2C_CMS_SOURCES", SOURCE)
    monkeypatch.delenv("Q2C_OPS_STORE", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)
    return tmp_path / "home"


@pytest.fixture()
def store(home) -> CmsStore:
    return CmsStore.from_settings(load_settings())


@pytest.fixture()
def cms() -> FakeCms:
    return FakeCms()


def registry(store: CmsStore):
    return load_registry(CONTENT_DIR, cms=store)


def legal_choice(store: CmsStore, on: dt.date = FEB_1):
    selection = select_content(registry(store), invoice(), on=on)
    (choice,) = selection.legal
    return choice


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


STORED_DE = ("Verzugszinsen: neun Prozentpunkte über dem Basiszinssatz (§ 288 BGB).\n")


def test_an_approved_item_becomes_an_entry_chosen_with_its_version_and_hash(cms, store):
    cms.put(legal())
    result = sync(cms, store, NOW)
    assert (result.status, result.checked, result.new_versions, result.approved) == (
        "ok", 1, 1, 1)

    entry = registry(store).version("late_payment_de.de", 1)
    assert entry.status == "approved" and entry.kind == "legal" and entry.slot == "late_payment"
    assert entry.sha256 == {"de.txt": sha(STORED_DE)}
    assert entry.file_path().read_text(encoding="utf-8") == STORED_DE
    assert entry.file_path() == store.body_dir / SOURCE / sha(STORED_DE) / "de.txt"
    assert (entry.effective_from, entry.approved_by) == (dt.date(2026, 1, 15), "Legal (A. Berg)")
    assert entry.targeting.as_dict() == {"country": ["DE"], "language": ["de"]}
    assert "wordpress item 42, locale de, version r1" in entry.description

    # The CMS text names country and language, the shipped late_payment_de only the country.
    choice = legal_choice(store)
    assert (choice.entry.ref, choice.why) == ("late_payment_de.de@v1", "country=DE, language=de")
    assert choice.record()["cms"] == {
        "source": "wordpress", "external_id": "42", "locale": "de", "source_version": "r1",
        "sha256": sha(STORED_DE),
    }
    page, _ = render_html(invoice(), registry(store), on=FEB_1)
    assert "Verzugszinsen: neun Prozentpunkte" in page


def test_versions_are_numbered_once_and_stay_the_same_across_runs(cms, store):
    cms.put(legal("r1"))
    sync(cms, store, NOW)
    cms.put(legal("r2", body="<p>Neue Fassung.</p>"))
    sync(cms, store, NOW)
    again = reconcile(cms, store, NOW + dt.timedelta(hours=1))
    assert (again.checked, again.new_versions, again.approved, again.retired) == (1, 0, 0, 0)
    refs = [(e.ref, e.origin.source_version)
            for e in registry(store).versions("late_payment_de.de")]
    assert refs == [("late_payment_de.de@v1", "r1"), ("late_payment_de.de@v2", "r2")]
    assert legal_choice(store).entry.ref == "late_payment_de.de@v2"


def test_a_draft_never_becomes_an_entry(cms, store):
    cms.put(legal("r1", status="draft"))
    result = sync(cms, store, NOW)
    assert (result.new_versions, result.approved, result.by_status) == (
        1, 0, {"draft": 1, "approved": 0, "retired": 0})
    assert registry(store).versions("late_payment_de.de") == []
    assert legal_choice(store).entry.ref == "late_payment_de@v1"  # the shipped text


def test_a_newer_draft_does_not_change_the_approved_entry(cms, store):
    cms.put(legal("r1"))
    sync(cms, store, NOW)
    pinned = legal_choice(store).entry

    cms.put(legal("r2", body="<p>Entwurf: 12 Prozentpunkte.</p>", status="draft"))
    result = sync(cms, store, NOW)
    assert (result.new_versions, result.approved, result.retired) == (1, 0, 0)
    choice = legal_choice(store)
    assert (choice.entry.ref, choice.entry.sha256) == (pinned.ref, pinned.sha256)
    assert [v.status for v in store.item_versions(SOURCE, "42", "de")] == ["approved", "draft"]

    # Publishing the draft makes it v2; v1 keeps its body and hash for what was sent with it.
    cms.put(legal("r2", body="<p>Entwurf: 12 Prozentpunkte.</p>"))
    sync(cms, store, NOW)
    assert legal_choice(store).entry.ref == "late_payment_de.de@v2"
    old = registry(store).version("late_payment_de.de", 1)
    assert old.sha256 == pinned.sha256 and sha(old.file_path().read_bytes()) == sha(STORED_DE)


def test_retirement_takes_effect_from_retired_at(cms, store):
    cms.put(legal("r1"))
    sync(cms, store, NOW)
    cms.put(legal("r1", status="retired", retired_at=_at(10, month=2, hour=9)))
    result = sync(cms, store, NOW)
    assert (result.new_versions, result.retired) == (0, 1)  # the same version, trashed

    entry = registry(store).version("late_payment_de.de", 1)
    assert (entry.status, entry.effective_to) == ("retired", dt.date(2026, 2, 9))
    assert legal_choice(store, on=dt.date(2026, 2, 9)).entry.ref == "late_payment_de.de@v1"
    assert legal_choice(store, on=dt.date(2026, 2, 10)).entry.ref == "late_payment_de@v1"


def test_a_hostile_block_is_printed_sanitized_and_as_text(cms, store):
    hostile = ('<p onmouseover="steal()">Pay <a href="javascript:alert(1)">here</a> '
               '<img src="https://evil.example/t.png" onerror="alert(1)">'
               '<img src="data:image/png;base64,iVBORw0KGgo=">'
               '<span style="background:url(https://evil.example/bg)">now</span>'
               '<script>alert(document.cookie)</script><style>p{background:url(x)}</style>'
               '{{ config }} {% for i in range(3) %}x{% endfor %} {{ doc.buyer.name }}</p>')
    cms.put(block(body=hostile))
    sync(cms, store, NOW)
    page, selection = render_html(invoice(), registry(store), on=FEB_1)
    (choice,) = [c for c in selection.blocks if c.entry.id == "bank_notice.en"]
    printed = re.search(r'data-block="bank_notice\.en@v1"[^>]*>(.*?)</div>', page, re.S)
    assert printed is not None
    markup = printed.group(1)
    assert markup == (
        '<p>Pay <a rel="noopener noreferrer">here</a> <span>now</span>'
        "&#123;&#123; config &#125;&#125; &#123;% for i in range(3) %&#125;x&#123;% endfor "
        "%&#125; &#123;&#123; doc.buyer.name &#125;&#125;</p>"
    )
    assert html.unescape(markup).endswith("{{ config }} {% for i in range(3) %}x{% endfor %} "
                                          "{{ doc.buyer.name }}</p>")
    assert choice.record()["cms"]["sha256"] == sha(markup + "\n")


def test_an_event_whose_body_differs_from_the_api_is_not_trusted(cms, store):
    cms.put(legal("r1"))
    sync(cms, store, NOW)
    cms.put(legal("r2", body="<p>Fassung der API.</p>"), announce=False)
    claimed = event_body(id="42", locale="de", version="r3", event_id="ev-1",
                         content="<p>Fassung des Angreifers.</p>")
    (outcome,) = take_event(cms, store, {"X-Fake-Signature": sign(claimed)}, claimed, NOW)

    assert (outcome.outcome, outcome.matches, outcome.changed) == ("new_version", False, True)
    newest = store.item_versions(SOURCE, "42", "de")[-1]
    assert (newest.source_version, newest.raw_sha256) == ("r2", sha("<p>Fassung der API.</p>"))
    assert legal_choice(store).entry.origin.source_version == "r2"
    (recorded,) = store.events(SOURCE)
    assert (recorded["event_version"], recorded["api_version"], recorded["matches"]) == (
        "r3", "r2", 0)
    assert recorded["event_sha256"] == sha("<p>Fassung des Angreifers.</p>")
    assert "not trusted" in recorded["detail"]


def test_an_event_with_a_bad_signature_is_rejected_before_the_api_is_asked(cms, store):
    cms.put(legal("r1"))
    body = event_body(id="42", locale="de", version="r1")
    (outcome,) = take_event(cms, store, {"X-Fake-Signature": "0" * 64}, body, NOW)
    assert (outcome.outcome, cms.fetches) == ("rejected", 0)
    assert store.versions() == []
    assert [e["outcome"] for e in store.events(SOURCE)] == ["rejected"]


def test_a_missed_event_is_caught_by_the_reconcile(cms, store):
    cms.put(legal("r1"))
    cms.put(legal("r1", external_id="43", content_id="late_payment_de_b"))
    sync(cms, store, NOW)
    cms.put(legal("r2", body="<p>Geändert ohne Ereignis.</p>"), announce=False)
    cms.gone.add(("43", "de"))

    later = NOW + dt.timedelta(days=2)
    assert sync(cms, store, later).checked == 0  # nothing in the change feed
    result = reconcile(cms, store, later)
    assert (result.checked, result.new_versions, result.approved, result.retired) == (2, 1, 1, 1)
    assert legal_choice(store, on=later.date()).entry.origin.source_version == "r2"
    gone = registry(store).version("late_payment_de_b.de", 1)
    assert (gone.status, gone.effective_to) == ("retired", dt.date(2026, 2, 2))


def test_an_unavailable_source_keeps_the_last_approved_content(cms, store, caplog):
    cms.put(legal("r1"))
    sync(cms, store, NOW)
    cms.put(legal("r2", body="<p>Neu.</p>"))
    cms.down = "HTTP 429 from wordpress after 6 attempts (Retry-After 600 s)"

    result = sync(cms, store, NOW)
    assert (result.status, result.error) == ("unavailable", cms.down)
    assert (result.checked, result.new_versions) == (0, 0)
    assert "the last approved content stays in force" in result.summary()
    assert "unavailable" in caplog.text
    assert reconcile(cms, store, NOW).status == "unavailable"
    assert store.last_sync(SOURCE)["status"] == "unavailable"
    assert legal_choice(store).entry.ref == "late_payment_de.de@v1"

    cms.down = None
    assert sync(cms, store, NOW).new_versions == 1  # resumes from the saved cursor


def test_content_check_finds_a_tampered_cms_body(cms, store, capsys):
    cms.put(legal("r1"))
    sync(cms, store, NOW)
    assert q2c_main(["content", "check"]) == 0
    assert "(1 from a CMS)" in capsys.readouterr().out

    body = registry(store).version("late_payment_de.de", 1).file_path()
    body.write_text("Verzugszinsen: null.\n", encoding="utf-8")
    assert q2c_main(["content", "check"]) == 1
    out = capsys.readouterr().out
    assert f"{body}: body `de.txt` of approved content late_payment_de.de@v1" in out
    assert "wordpress item 42, de, version r1" in out


def test_the_endpoint_queues_signed_events_and_the_sensor_takes_them(cms, store, home,
                                                                      monkeypatch):
    from orchestration import cms as cms_orchestration
    from orchestration.resources import Q2CSettings

    settings = load_settings()
    server = make_event_server({SOURCE: cms}, settings.cms_dir)
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/{SOURCE}"
    try:
        cms.put(legal("r1"), announce=False)
        body = event_body(id="42", locale="de", version="r1")
        good = requests.post(url, data=body, headers={"X-Fake-Signature": sign(body)},
                             timeout=10)
        bad = requests.post(url, data=body, headers={"X-Fake-Signature": "f" * 64},
                            timeout=10)
        challenge = requests.get(url, params={"challenge": "c-7f3a"}, timeout=10)
        no_challenge = requests.get(url, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert (good.status_code, bad.status_code) == (202, 401)
    # Adobe I/O Events registers a webhook only when it gets its challenge echoed back.
    assert (challenge.status_code, challenge.json()) == (200, {"challenge": "c-7f3a"})
    assert no_challenge.status_code == 404
    inbox = settings.cms_dir / "inbox" / SOURCE
    assert len(list(inbox.glob("*.json"))) == 1

    monkeypatch.setattr(cms_orchestration, "build_cms_connector", lambda name, s: cms)
    sensor = cms_orchestration.build_event_sensor(SOURCE)
    context = dg.build_sensor_context(resources={"q2c": Q2CSettings()})
    request = sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.asset_selection == [dg.AssetKey(["content", "cms_wordpress"])]
    assert list(inbox.glob("*.json")) == [] and len(list((inbox / "done").glob("*.json"))) == 1
    assert legal_choice(store).entry.ref == "late_payment_de.de@v1"
    assert isinstance(sensor(context), dg.SkipReason)


def test_the_content_asset_reports_an_unavailable_source_without_failing(cms, store,
                                                                         monkeypatch):
    import assets.content as content_assets
    from orchestration.resources import Q2CSettings

    cms.put(legal("r1"))
    cms.put(block())
    monkeypatch.setattr(content_assets, "build_cms_connector", lambda name, s: cms)
    (asset,) = content_assets.build_cms_assets((SOURCE,))
    key = content_assets.cms_asset_key(SOURCE)

    first = dg.materialize([asset], resources={"q2c": Q2CSettings()})
    metadata = first.asset_materializations_for_node(asset.op.name)[0].metadata
    assert metadata["unavailable"].value == "no"
    assert (metadata["new_versions"].value, metadata["versions_approved"].value) == (2, 2)

    cms.down = "wordpress did not answer within 30 s"
    second = dg.materialize([asset], resources={"q2c": Q2CSettings()})
    assert second.success
    (event,) = second.asset_materializations_for_node(asset.op.name)
    assert event.asset_key == key
    assert event.metadata["unavailable"].value == f"yes: {cms.down}"
    assert event.metadata["versions_approved"].value == 2


def test_a_registry_loaded_before_a_sync_renders_what_the_batch_selected(cms, store):
    """A render worker loads its registry once; the batch's content may be newer."""
    worker_registry = registry(store)
    cms.put(block())
    sync(cms, store, NOW)
    used = resolve_content(registry(store), on=FEB_1)
    page, selection = render_html(invoice(), worker_registry, used=used)
    assert "bank_notice.en@v1" in [c.entry.ref for c in selection.blocks]
    assert "Our new bank details apply from March." in page


def test_the_document_manifest_names_the_cms_version_and_hash(cms, store, home):
    from assets.content import documents_by_cms_version
    from q2c.documents.pool import RenderedDocument, record_manifest
    from q2c.warehouse import OPS_SCHEMA, connect

    cms.put(legal("r1"))
    sync(cms, store, NOW)
    _, selection = render_html(invoice(), registry(store), on=FEB_1)
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
            f"select content_selection from {OPS_SCHEMA}.document_manifest"
        ).fetchone()
    (legal_record,) = [c for c in json.loads(text)["choices"] if c["role"] == "legal"]
    assert (legal_record["id"], legal_record["version"], legal_record["cms"]) == (
        "late_payment_de.de", 1,
        {"source": "wordpress", "external_id": "42", "locale": "de", "source_version": "r1",
         "sha256": sha(STORED_DE)},
    )
    assert documents_by_cms_version(settings, SOURCE) == {
        f"late_payment_de.de v1 (item 42, de, version r1, sha256 {sha(STORED_DE)[:12]})": 1,
    }


def test_a_second_item_claiming_an_entry_id_is_left_out_and_the_first_keeps_it(cms, store):
    cms.put(legal(body="<p>Text A (post 42)</p>"))
    cms.put(legal(external_id="43", body="<p>Text B (post 43)</p>", modified_at=_at(16)))
    result = sync(cms, store, NOW)
    assert result.problems == (
        "wordpress item 43 (de) version r1 (legal) claims q2c id late_payment_de.de, which "
        "wordpress item 42 (de) version r1 (legal) already has; give one of them another "
        "content id (or locale) in the CMS",
    )
    assert [(e.ref, e.origin.external_id) for e in registry(store).entries if e.origin] == [
        ("late_payment_de.de@v1", "42")]
    assert legal_choice(store).entry.file_path().read_text(encoding="utf-8") == (
        "Text A (post 42)\n")


def test_a_block_with_a_legal_texts_content_id_does_not_become_an_entry(cms, store):
    cms.put(legal())
    cms.put(block(external_id="78", content_id="late_payment_de", locale="de"))
    result = sync(cms, store, NOW)
    assert result.problems == (
        "wordpress item 78 (de) version 1 (blocks) claims q2c id late_payment_de.de, which "
        "wordpress item 42 (de) version r1 (legal) already has; give one of them another "
        "content id (or locale) in the CMS",
    )
    assert [(e.ref, e.kind) for e in registry(store).entries if e.origin] == [
        ("late_payment_de.de@v1", "legal")]


def test_a_locale_that_is_not_a_language_tag_never_becomes_an_entry(cms, store):
    cms.put(legal(locale="de\u202e"))
    cms.put(legal(external_id="45", locale="DE_de_x/y"))
    cms.put(legal(external_id="46", locale="de_AT"))
    result = sync(cms, store, NOW)
    assert result.problems == (
        "wordpress item 42 (de\u202e) version r1 (late_payment_de.de\u202e): locale "
        "'de\\u202e' is not a language tag such as de or de-AT; fix the item's language "
        "in the CMS",
        "wordpress item 45 (DE_de_x/y) version r1 (late_payment_de.de-DE-X/Y): locale "
        "'DE_de_x/y' is not a language tag such as de or de-AT; fix the item's language "
        "in the CMS",
    )
    assert [e.ref for e in registry(store).entries if e.origin] == ["late_payment_de.de-AT@v1"]


def test_the_endpoint_queues_one_copy_of_an_event_and_no_caller_credentials(cms, store,
                                                                           home):
    import socket

    settings = load_settings()
    server = make_event_server({SOURCE: cms}, settings.cms_dir, request_timeout=0.5)
    serve_in_thread(server)
    port = server.server_address[1]
    body = event_body(id="42", locale="de", version="r1")
    headers = {"X-Fake-Signature": sign(body), "Authorization": "Basic c2VjcmV0OnBhc3M=",
               "Cookie": "wordpress_logged_in=abc", "Proxy-Authorization": "Basic eA=="}
    try:
        codes = [requests.post(f"http://127.0.0.1:{port}/{SOURCE}", data=body,
                               headers=headers, timeout=10).status_code for _ in range(5)]
        half_sent = socket.create_connection(("127.0.0.1", port), timeout=10)
        half_sent.sendall(b"POST /wordpress HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                          b"\r\n0123456789")
        dropped = half_sent.recv(100)  # the server closes it instead of waiting forever
        half_sent.close()
    finally:
        server.shutdown()
        server.server_close()
    assert codes == [202] * 5 and dropped == b""
    (queued,) = (settings.cms_dir / "inbox" / SOURCE).glob("*.json")
    record = json.loads(queued.read_text(encoding="utf-8"))
    assert record["body_sha256"] == sha(body)
    assert {name.lower() for name in record["headers"]} == {
        "host", "user-agent", "accept-encoding", "accept", "connection", "content-length",
        "x-fake-signature"}
