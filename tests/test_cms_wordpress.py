"""The WordPress connector against WordPress's wire format, and against a real WordPress.

The first part runs on tests/wp_mock_server.py, which serves WordPress core's recorded API
responses (post 4, page 7 and their revisions) and q2c posts made from their shape (the
table in its docstring is what the counts below are counted from). The second part starts
Debian's WordPress with MariaDB on loopback (tests/wordpress_server.py) and drafts,
publishes, revises, trashes and deletes a legal text through its REST API.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from provider_servers import running
from wordpress_server import WordPressServer
from wp_mock_server import APP_PASSWORD, USER, WordPressMockServer

from q2c.content.cms.base import CmsError, CmsNotFound, CmsUnavailable, EventRejected
from q2c.content.cms.events import (
    make_event_server,
    pending_events,
    serve_in_thread,
    take_event,
    take_inbox_file,
)
from q2c.content.cms.store import CmsStore
from q2c.content.cms.sync import reconcile, sync
from q2c.content.cms.wordpress import WEBHOOK_PLUGIN, WordPressConnector
from q2c.content.registry import load_registry

SECRET = "whsec-4f1c9a"
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


class Sleeps(list):
    """Stands in for time.sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def connect(url: str, user: str | None = USER, password: str | None = APP_PASSWORD,
            extra_env: dict[str, str] | None = None, **options) -> WordPressConnector:
    env = {"Q2C_WORDPRESS_URL": url, "Q2C_WORDPRESS_WEBHOOK_SECRET": SECRET,
           **(extra_env or {})}
    if user:
        env.update(Q2C_WORDPRESS_USER=user, Q2C_WORDPRESS_APP_PASSWORD=password or "")
    options.setdefault("sleep", Sleeps())
    return WordPressConnector.from_env(env, **options)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def wp_server() -> Iterator[WordPressMockServer]:
    yield from running(WordPressMockServer())


@pytest.fixture
def wp(wp_server: WordPressMockServer) -> WordPressMockServer:
    wp_server.reset()
    return wp_server


# Listing changes


def test_listing_with_an_app_password_sees_every_q2c_state_oldest_first(wp, caplog):
    connector = connect(wp.url, page_size=2)
    with caplog.at_level(logging.WARNING, logger="q2c.content.cms.wordpress"):
        pages = list(connector.changes_since(None))

    # 8 posts are in a q2c category (19 is not); 20 has no q2c-id tag and is skipped.
    # Pages of 2 start again from the newest second seen, so the second-level ties of
    # 14 and 15 (both 09:00:00) take a page each.
    assert [[ref.external_id for ref in page.items] for page in pages] == [
        ["4", "11"], ["14"], ["15"], ["16", "17"], ["18"], []]
    assert [page.has_more for page in pages] == [True] * 5 + [False]
    refs = {ref.external_id: ref for page in pages for ref in page.items}
    assert refs["11"].locale == "de" and refs["11"].source_version == "13"
    assert refs["14"].locale == "en"
    assert refs["14"].source_version == "modified:2026-03-02T09:00:00"
    assert refs["15"].modified_at == utc("2026-03-02T09:00:00")
    assert pages[-1].cursor.startswith("2026-03-05T10:00:00Z|20:")
    assert "q2c-id" in caplog.text and "posts 20 is skipped" in caplog.text

    listings = wp.data_requests("/wp-json/wp/v2/posts")
    assert len(listings) == 6
    assert {seen.query["context"] for seen in listings} == {"edit"}
    assert {seen.query["status"] for seen in listings} == {
        "publish,future,draft,pending,private,trash"}
    assert {seen.query["categories"] for seen in listings} == {"2,3"}
    assert [seen.query.get("modified_after") for seen in listings] == [
        None, "2026-03-01T09:59:59+00:00", "2026-03-02T08:59:59+00:00",
        "2026-03-02T08:59:59+00:00", "2026-03-03T08:59:59+00:00",
        "2026-03-03T09:59:59+00:00"]
    assert [seen.query["page"] for seen in listings] == ["1", "1", "1", "2", "1", "1"]


def test_a_listing_resumes_at_its_cursor_including_a_change_in_the_same_second(wp):
    connector = connect(wp.url)
    cursor = list(connector.changes_since(None))[-1].cursor
    assert [page.items for page in connector.changes_since(cursor)] == [()]

    wp.save(15, "2026-03-05T10:00:00")  # the cursor's own second, post not seen yet
    pages = list(connector.changes_since(cursor))
    assert [ref.external_id for page in pages for ref in page.items] == ["15"]
    cursor = pages[-1].cursor
    assert [page.items for page in connector.changes_since(cursor)] == [()]

    # Changed again within the same second: published now, so listed again.
    wp.save(15, "2026-03-05T10:00:00", status="publish")
    revision = wp.save(11, "2026-03-06T12:00:00", content="<p>Verzugszinsen neu.</p>\n")
    pages = list(connector.changes_since(cursor))
    assert [(ref.external_id, ref.source_version) for page in pages for ref in page.items] \
        == [("15", "21"), ("11", str(revision))]
    assert pages[-1].cursor.startswith("2026-03-06T12:00:00Z|11:")


def test_without_credentials_only_published_posts_are_listed(wp):
    connector = connect(wp.url, user=None)
    pages = list(connector.changes_since(None))
    assert [ref.external_id for page in pages for ref in page.items] == ["4", "11"]
    listing = wp.data_requests("/wp-json/wp/v2/posts")[0]
    assert "context" not in listing.query and "status" not in listing.query
    assert "Authorization" not in listing.headers


def test_context_edit_without_credentials_is_refused_as_wordpress_refuses_it(wp):
    answer = requests.get(f"{wp.url}/wp-json/wp/v2/posts", params={"context": "edit"},
                          timeout=10)
    assert answer.status_code == 401
    assert answer.json()["code"] == "rest_forbidden_context"

    public = connect(wp.url, user=None)
    with pytest.raises(CmsNotFound, match="not public"):
        public.fetch("14", "en")
    with pytest.raises(CmsError, match="application password"):
        public.fetch("11", "de", version="12")


def test_a_wrong_app_password_stops_with_what_to_set(wp):
    connector = connect(wp.url, password="wrong-password-123")
    for attempt in (lambda: list(connector.changes_since(None)),
                    lambda: connector.fetch("14", "en")):
        with pytest.raises(CmsError) as caught:
            attempt()
        message = str(caught.value)
        assert not isinstance(caught.value, (CmsNotFound, CmsUnavailable))
        assert "rest_forbidden" in message and "Q2C_WORDPRESS_APP_PASSWORD" in message
        assert "wrong-password-123" not in message


# Fetching, states and versions


def test_a_published_legal_text_is_approved_at_its_newest_revision(wp):
    item = connect(wp.url).fetch("11", "de")
    body = "<p>Verzugszinsen: 9 Prozentpunkte über dem Basiszinssatz.</p>\n".encode()
    assert (item.source, item.external_id, item.locale) == ("wordpress", "11", "de")
    assert (item.status, item.source_status, item.source_version) == (
        "approved", "publish", "13")
    assert (item.kind, item.content_id, item.case, item.placement) == (
        "legal", "late_payment_de", "late_payment", None)
    assert dict(item.targeting) == {"country": ("DE",)}
    assert item.title == "Verzugszinsen"
    assert item.body == body and item.sha256 == hashlib.sha256(body).hexdigest()
    assert item.approved_at == utc("2026-03-01T10:00:00") and item.retired_at is None
    assert item.media_type == "text/html"


@pytest.mark.parametrize(("post_id", "wordpress_status", "status"), [
    ("4", "publish", "approved"),
    ("14", "draft", "draft"),
    ("15", "pending", "draft"),
    ("17", "private", "draft"),
    ("18", "future", "draft"),
    ("16", "trash", "retired"),
])
def test_wordpress_states_map_onto_draft_approved_retired(wp, post_id, wordpress_status,
                                                          status):
    item = connect(wp.url).fetch(post_id, "en")
    assert (item.source_status, item.status) == (wordpress_status, status)
    assert (item.approved_at is not None) == (status == "approved")
    assert (item.retired_at is not None) == (status == "retired")


def test_a_block_says_its_placement_and_targeting(wp):
    item = connect(wp.url).fetch("15", "en")
    assert (item.kind, item.content_id, item.placement, item.case) == (
        "blocks", "year_end_closure", "bottom", None)
    assert dict(item.targeting) == {"segment": ("enterprise",)}
    assert item.retired_at is None
    trashed = connect(wp.url).fetch("16", "en")
    assert trashed.retired_at == utc("2026-03-03T08:00:00")


def test_revisions_are_the_versions_and_autosaves_are_not(wp):
    connector = connect(wp.url)
    # WordPress core's fixture: revision 5 matches the post, 6 is an autosave.
    assert [ref.source_version for ref in connector.versions("4", "en")] == ["5"]
    current = connector.fetch("4", "en")
    assert current.source_version == "5"
    assert current.body == b"<p>Updated post content.</p>\n"
    autosave = connector.fetch("4", "en", version="6")
    assert (autosave.status, autosave.source_status) == ("draft", "autosave")
    assert autosave.body == b"<p>Autosave post content.</p>\n"

    assert [(ref.source_version, ref.modified_at) for ref in connector.versions("11", "de")] \
        == [("12", utc("2026-02-27T08:00:00")), ("13", utc("2026-03-01T10:00:00"))]
    old = connector.fetch("11", "de", version="12")
    assert (old.status, old.source_status) == ("retired", "inherit")
    assert old.body == b"<p>Verzugszinsen (Entwurf).</p>\n"
    assert old.retired_at == utc("2026-03-01T10:00:00")
    assert connector.fetch("11", "de", version="13").sha256 == connector.fetch("11", "de").sha256
    with pytest.raises(CmsNotFound, match="no revision 999 .*12, 13"):
        connector.fetch("11", "de", version="999")


def test_a_draft_saved_once_is_versioned_by_its_modification_time(wp):
    connector = connect(wp.url)
    refs = connector.versions("14", "en")
    assert [ref.source_version for ref in refs] == ["modified:2026-03-02T09:00:00"]
    assert connector.fetch("14", "en", version=refs[0].source_version).status == "draft"


def test_a_revision_gives_a_new_version_with_a_new_hash(wp):
    connector = connect(wp.url)
    before = connector.fetch("11", "de")
    revision = wp.save(11, "2026-03-06T12:00:00", content="<p>Verzugszinsen: 10 Punkte.</p>\n")
    after = connector.fetch("11", "de")
    assert after.source_version == str(revision) != before.source_version
    assert after.sha256 == hashlib.sha256(b"<p>Verzugszinsen: 10 Punkte.</p>\n").hexdigest()
    assert after.sha256 != before.sha256
    assert [ref.source_version for ref in connector.versions("11", "de")] == [
        "12", "13", str(revision)]


def test_pages_say_what_they_are_in_post_meta(wp):
    connector = connect(wp.url, extra_env={"Q2C_WORDPRESS_POST_TYPE": "pages"})
    refs = [ref for page in connector.changes_since(None) for ref in page.items]
    assert [(ref.external_id, ref.locale, ref.source_version) for ref in refs] == [
        ("7", "fr", "9")]
    item = connector.fetch("7", "fr")
    assert (item.kind, item.content_id, item.case) == ("legal", "late_payment_fr",
                                                        "late_payment")
    assert dict(item.targeting) == {"country": ("BE", "FR")}
    assert item.source_version == "8"  # the listing's link names autosave 9


def test_untagged_posts_take_the_site_language(wp):
    wp.language = "de_DE"
    assert connect(wp.url).fetch("14", "de").locale == "de"
    chosen = connect(wp.url, extra_env={"Q2C_WORDPRESS_LOCALE": "fr_BE"})
    assert chosen.fetch("14", "fr-BE").locale == "fr-BE"
    assert chosen.fetch("11", "de").locale == "de"  # its q2c-locale tag wins


def test_missing_gone_foreign_and_incomplete_posts(wp):
    connector = connect(wp.url)
    with pytest.raises(CmsNotFound, match=r"does not exist \(404\)"):
        connector.fetch("12345", "en")
    with pytest.raises(CmsNotFound, match=r"is gone \(410\)"):
        connector.fetch("99", "en")
    wp.delete(14)
    with pytest.raises(CmsNotFound, match="404"):
        connector.fetch("14", "en")
    with pytest.raises(CmsNotFound, match="is in de, not en"):
        connector.fetch("11", "en")
    with pytest.raises(CmsNotFound, match="is not q2c content: put it in the category"):
        connector.fetch("19", "en")
    with pytest.raises(CmsError, match="tag it q2c-id:<content id>"):
        connector.fetch("20", "en")


# A slow or failing WordPress


def test_a_429_is_retried_after_the_wait_wordpress_asks_for(wp):
    sleeps = Sleeps()
    wp.fail(429, match="/posts/11", retry_after="7")
    item = connect(wp.url, sleep=sleeps).fetch("11", "de")
    assert item.source_version == "13" and sleeps == [7.0]


def test_a_wordpress_that_keeps_failing_is_unavailable(wp):
    sleeps = Sleeps()
    wp.fail(503, match="/wp-json/wp/v2/posts", times=4)
    with pytest.raises(CmsUnavailable, match="HTTP 503.*gave up after 4 attempts"):
        list(connect(wp.url, sleep=sleeps).changes_since(None))
    assert len(sleeps) == 3


# Publish events


def signed(body: bytes, at: dt.datetime, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return {"X-Q2C-Timestamp": stamp, "X-Q2C-Signature": f"sha256={digest.hexdigest()}"}


EVENT = json.dumps({"id": "7d0c1a52-3f2e-4c55-9a51-2f0e4b7c9d10", "action": "publish",
                    "post_id": 11, "post_type": "post", "status": "publish",
                    "modified_gmt": "2026-03-10 11:59:58"}).encode()


def test_a_signed_event_is_read():
    connector = connect("http://127.0.0.1:9", clock=lambda: NOW)
    headers = {name.lower(): value for name, value in
               signed(EVENT, NOW - dt.timedelta(seconds=2)).items()}
    event = connector.verify_event(headers, EVENT)
    assert (event.source, event.external_id, event.action) == ("wordpress", "11", "publish")
    assert event.event_id == "7d0c1a52-3f2e-4c55-9a51-2f0e4b7c9d10"
    assert event.received_at == NOW


def test_an_event_with_a_bad_signature_is_refused():
    connector = connect("http://127.0.0.1:9", clock=lambda: NOW)
    with pytest.raises(EventRejected, match="does not match"):
        connector.verify_event(signed(EVENT, NOW, secret="another-secret"), EVENT)
    tampered = EVENT.replace(b'"post_id": 11', b'"post_id": 12')
    with pytest.raises(EventRejected, match="does not match"):
        connector.verify_event(signed(EVENT, NOW), tampered)
    with pytest.raises(EventRejected, match="X-Q2C-Timestamp is missing"):
        connector.verify_event({"X-Q2C-Signature": "sha256=00"}, EVENT)


def test_a_stale_event_is_refused():
    connector = connect("http://127.0.0.1:9", clock=lambda: NOW)
    with pytest.raises(EventRejected, match="more than 5 minutes from now"):
        connector.verify_event(signed(EVENT, NOW - dt.timedelta(minutes=6)), EVENT)
    event = connector.verify_event(signed(EVENT, NOW - dt.timedelta(minutes=4)), EVENT)
    assert event.external_id == "11"


def test_an_event_needs_a_secret_and_a_known_shape():
    without = WordPressConnector.from_env({"Q2C_WORDPRESS_URL": "http://127.0.0.1:9"})
    with pytest.raises(EventRejected, match="Q2C_WORDPRESS_WEBHOOK_SECRET"):
        without.verify_event(signed(EVENT, dt.datetime.now(dt.UTC)), EVENT)
    connector = connect("http://127.0.0.1:9", clock=lambda: NOW)
    odd = json.dumps({"action": "publish", "post_id": "11; drop"}).encode()
    with pytest.raises(EventRejected, match="numeric `post_id`"):
        connector.verify_event(signed(odd, NOW), odd)


def test_settings_name_what_is_missing():
    with pytest.raises(CmsError, match="Q2C_WORDPRESS_URL"):
        WordPressConnector.from_env({})
    with pytest.raises(CmsError, match="both Q2C_WORDPRESS_USER and"):
        WordPressConnector.from_env({"Q2C_WORDPRESS_URL": "http://127.0.0.1:9",
                                     "Q2C_WORDPRESS_USER": "editor"})


# A real WordPress: Debian's package with a MariaDB of its own, on loopback


@dataclass
class RealSite:
    """WordPress with the q2c event plugin, and q2c's event endpoint it posts to."""

    server: WordPressServer
    connector: WordPressConnector
    cms_dir: Path


@pytest.fixture(scope="module")
def real_wordpress(tmp_path_factory) -> Iterator[RealSite]:
    folder = tmp_path_factory.mktemp("wordpress")
    connectors: dict[str, WordPressConnector] = {}
    endpoint: ThreadingHTTPServer = make_event_server(connectors, folder / "cms")
    serve_in_thread(endpoint)
    hook = f"http://127.0.0.1:{endpoint.server_address[1]}/wordpress"
    server = WordPressServer(folder / "site", config={
        "Q2C_WEBHOOK_URL": hook, "Q2C_WEBHOOK_SECRET": SECRET,
    }, mu_plugins={"q2c-events": WEBHOOK_PLUGIN})
    try:
        server.start()
        connectors["wordpress"] = connect(server.url, server.user, server.app_password)
        yield RealSite(server, connectors["wordpress"], folder / "cms")
    finally:
        server.stop()
        endpoint.shutdown()
        endpoint.server_close()


# (path, query, credentials) -> (HTTP status, WordPress error code); {post} is a published
# post: "Hello world!" (1) on the real site, the fixture's post 4 on the mock.
REFUSALS = [
    ("posts", {"context": "edit"}, None, 401, "rest_forbidden_context"),
    ("posts", {"context": "edit"}, "wrong", 401, "rest_forbidden_context"),
    ("posts", {"status": "draft"}, None, 400, "rest_invalid_param"),
    ("posts", {"page": 9}, None, 400, "rest_post_invalid_page_number"),
    ("posts/987654", {}, None, 404, "rest_post_invalid_id"),
    ("posts/{post}/revisions", {}, None, 401, "rest_cannot_read"),
]


def test_the_mock_refuses_what_a_real_wordpress_refuses(real_wordpress, wp):
    for url, post, user in ((real_wordpress.server.url, 1, real_wordpress.server.user),
                            (wp.url, 4, USER)):
        for path, params, credentials, status, code in REFUSALS:
            answer = requests.get(
                f"{url}/wp-json/wp/v2/{path.format(post=post)}", params=params, timeout=30,
                auth=(user, "wrong password") if credentials else None)
            assert (url, path, answer.status_code, answer.json()["code"]) == (
                url, path, status, code)
        listing = requests.get(f"{url}/wp-json/wp/v2/posts", params={"per_page": 1},
                               timeout=30)
        total = int(listing.headers["X-WP-Total"])
        assert listing.headers["X-WP-TotalPages"] == str(total) and total >= 1


ENTRY = "late_payment_nl.nl"
V1 = "<p>Bij te late betaling is de wettelijke handelsrente verschuldigd.</p>"
V2 = "<p>Bij te late betaling is de wettelijke handelsrente verschuldigd, plus 40 euro.</p>"


def test_a_legal_text_drafted_published_revised_and_trashed_in_wordpress(
    real_wordpress, tmp_path
):
    """Each change reaches the CMS store (by sync, and by publish event) and the
    registry, or does not: a draft never; a published revision as a new approved
    version; a trashed post retires every version."""
    wp, connector = real_wordpress.server, real_wordpress.connector
    public = connect(wp.url, user=None)
    by_sync = CmsStore(tmp_path / "sync.sqlite", tmp_path / "sync-bodies")
    by_event = CmsStore(tmp_path / "events.sqlite", tmp_path / "event-bodies")
    today = dt.datetime.now(dt.UTC).date()

    def take_events() -> list[tuple[str, str, bool | None]]:
        taken = []
        for path in pending_events(real_wordpress.cms_dir, "wordpress"):
            body = json.loads(path.read_text())["body_base64"]
            action = json.loads(base64.b64decode(body))["action"]
            for outcome in take_inbox_file(connector, by_event, path, dt.datetime.now(dt.UTC)):
                taken.append((action, outcome.outcome, outcome.matches))
        return taken

    def registry(store: CmsStore) -> tuple[list[tuple[int, str, str]], list[str]]:
        loaded = load_registry(cms=store)
        versions = [(entry.version, entry.status, entry.origin.source_version)
                    for entry in loaded.versions(ENTRY)]
        return versions, [entry.ref for entry in loaded.in_force(today) if entry.id == ENTRY]

    def synced() -> tuple[int, int, int]:
        result = sync(connector, by_sync, dt.datetime.now(dt.UTC))
        assert result.status == "ok" and not result.problems
        return result.new_versions, result.approved, result.retired

    category = wp.api("POST", "wp/v2/categories", json={"name": "q2c-legal"}).json()["id"]
    tags = [wp.api("POST", "wp/v2/tags", json={"name": name}).json()["id"] for name in (
        "q2c-id:late_payment_nl", "q2c-case:late_payment", "q2c-locale:nl",
        "q2c-country:NL")]

    # A draft: seen with the application password, never approved, never in the registry.
    created = wp.api("POST", "wp/v2/posts", json={
        "title": "Wettelijke rente", "content": V1, "status": "draft",
        "categories": [category], "tags": tags}).json()
    post = str(created["id"])
    draft = connector.fetch(post, "nl")
    assert (draft.status, draft.source_status) == ("draft", "draft")
    assert draft.source_version == f"modified:{created['modified_gmt']}"
    assert (draft.content_id, draft.case, dict(draft.targeting)) == (
        "late_payment_nl", "late_payment", {"country": ("NL",)})
    assert [ref for page in public.changes_since(None) for ref in page.items] == []
    with pytest.raises(CmsNotFound, match="not public"):
        public.fetch(post, "nl")
    assert synced() == (1, 0, 0)
    assert take_events() == [("update", "new_version", None)]
    assert registry(by_sync) == registry(by_event) == ([], [])

    # Published: approved at its first revision, which both paths record as v1.
    published = wp.api("POST", f"wp/v2/posts/{post}", json={"status": "publish"}).json()
    [first] = wp.api("GET", f"wp/v2/posts/{post}/revisions").json()
    item = connector.fetch(post, "nl")
    assert (item.status, item.source_status, item.source_version) == (
        "approved", "publish", str(first["id"]))
    assert item.body == published["content"]["rendered"].encode()
    assert public.fetch(post, "nl").sha256 == item.sha256
    assert synced() == (1, 1, 0)
    assert take_events() == [("publish", "new_version", True)]
    expected = [(1, "approved", str(first["id"]))]
    assert registry(by_sync) == registry(by_event) == (expected, [f"{ENTRY}@v1"])

    # Revised: a new revision is a new version with a new hash; v2 is in force.
    revised = wp.api("POST", f"wp/v2/posts/{post}", json={"content": V2}).json()
    second = max(row["id"] for row in wp.api("GET", f"wp/v2/posts/{post}/revisions").json())
    newer = connector.fetch(post, "nl")
    assert newer.source_version == str(second) != item.source_version
    expected_sha = hashlib.sha256(revised["content"]["rendered"].encode()).hexdigest()
    assert newer.sha256 == expected_sha != item.sha256
    assert [ref.source_version for ref in connector.versions(post, "nl")] == [
        str(first["id"]), str(second)]
    old = connector.fetch(post, "nl", version=str(first["id"]))
    assert (old.status, old.sha256) == ("retired", item.sha256)
    assert synced() == (1, 1, 0)
    assert take_events() == [("update", "new_version", True)]
    expected.append((2, "approved", str(second)))
    assert registry(by_sync) == registry(by_event) == (expected, [f"{ENTRY}@v2"])

    # Trashed: retired, and both approved versions with it; nothing is in force.
    wp.api("DELETE", f"wp/v2/posts/{post}")
    trashed = connector.fetch(post, "nl")
    assert (trashed.status, trashed.source_status) == ("retired", "trash")
    assert trashed.retired_at is not None
    assert synced() == (0, 0, 2)
    assert take_events() == [("trash", "retired", True)]
    retired = [(1, "retired", str(first["id"])), (2, "retired", str(second))]
    assert registry(by_sync) == registry(by_event) == (retired, [])

    # Deleted outright: gone (404); the reconcile finds it, nothing is left to retire.
    wp.api("DELETE", f"wp/v2/posts/{post}", params={"force": "true"})
    with pytest.raises(CmsNotFound, match="404"):
        connector.fetch(post, "nl")
    result = reconcile(connector, by_sync, dt.datetime.now(dt.UTC))
    assert (result.status, result.checked, result.retired) == ("ok", 1, 0)
    assert take_events() == [("delete", "retired", None)]
    assert registry(by_sync) == registry(by_event) == (retired, [])


# Unpublishing: WordPress keeps one state per post


@pytest.mark.parametrize(("status", "content"), [
    ("draft", "<p>Überarbeitung (Entwurf).</p>\n"),  # switched to draft and edited at once
    ("private", "<p>Intern.</p>\n"),
    ("pending", None),  # status change only
])
def test_a_post_that_stops_being_published_retires_its_approved_versions(
        wp, tmp_path, status, content):
    connector = connect(wp.url)
    store = CmsStore(tmp_path / "ops.sqlite", tmp_path / "bodies")
    sync(connector, store, NOW)
    assert [v.status for v in store.item_versions("wordpress", "11", "de")] == ["approved"]
    wp.save(11, "2026-03-11T08:00:00", content=content, status=status)
    seen = NOW + dt.timedelta(days=1)
    result = sync(connector, store, seen)
    assert result.retired == 1
    rows = store.item_versions("wordpress", "11", "de")
    assert [(v.source_version, v.status) for v in rows if v.source_version == "13"] == [
        ("13", "retired")]
    assert [v.retired_at for v in rows if v.source_version == "13"] == [seen]
    assert not [v for v in rows if v.status == "approved"]
    registry = load_registry(cms=store)
    assert not [e for e in registry.in_force(dt.date(2026, 3, 12))
                if e.origin is not None and e.origin.external_id == "11"]


def test_the_plugins_unpublish_event_retires_the_post(wp, tmp_path):
    connector = connect(wp.url, clock=lambda: NOW)
    store = CmsStore(tmp_path / "ops.sqlite", tmp_path / "bodies")
    sync(connector, store, NOW - dt.timedelta(hours=1))
    wp.save(11, "2026-03-10T11:59:58", content="<p>Neu, noch nicht frei.</p>\n",
            status="draft")
    body = json.dumps({"id": "e-unpub-1", "action": "unpublish", "post_id": 11,
                       "post_type": "post", "status": "draft",
                       "modified_gmt": "2026-03-10 11:59:58"}).encode()
    outcomes = take_event(connector, store, signed(body, NOW), body, NOW)
    assert [(o.outcome, o.changed) for o in outcomes] == [("retired", True)]
    rows = store.item_versions("wordpress", "11", "de")
    assert [(v.source_version, v.status, v.retired_at) for v in rows
            if v.source_version == "13"] == [("13", "retired", NOW)]


# Answers of the wrong shape


@pytest.mark.parametrize(("answer", "why"), [
    ([{"id": 11, "status": "publish"}], "post 11 has no `modified_gmt`"),
    ({"code": "ok", "data": {}}, "the answer is not a JSON list of posts"),
])
def test_a_listing_that_cannot_be_read_ends_the_run_as_unavailable(wp, tmp_path, answer, why):
    store = CmsStore(tmp_path / "ops.sqlite", tmp_path / "bodies")
    wp.answer(answer, match="/wp-json/wp/v2/posts", times=1)
    result = sync(connect(wp.url), store, NOW)
    assert result.status == "unavailable"
    assert result.error.startswith("unreadable answer: WordPress: listing posts: ")
    assert why in result.error
    assert store.last_sync("wordpress")["status"] == "unavailable"


def test_a_post_that_cannot_be_read_is_a_problem_of_that_post(wp, tmp_path):
    store = CmsStore(tmp_path / "ops.sqlite", tmp_path / "bodies")
    wp.answer(None, match="/wp-json/wp/v2/posts/11", times=100)
    result = sync(connect(wp.url), store, NOW)
    assert result.status == "ok"
    [problem] = result.problems
    assert problem.startswith("wordpress item 11 (de): WordPress: reading posts 11: the answer")


def test_cms_connectors_wait_at_most_4_attempts_and_30_seconds_a_read():
    client = connect("http://127.0.0.1:9").client
    assert (client.retry.max_attempts, client.retry.max_retry_after) == (4, 30.0)
    assert client.timeout == (10.0, 30.0)


def test_the_basic_credentials_are_masked_in_errors(wp):
    token = base64.b64encode(f"{USER}:{APP_PASSWORD}".encode()).decode()
    wp.fail(403, match="/posts/11", body={"code": "waf_blocked",
                                          "message": f"blocked Authorization: Basic {token}"})
    with pytest.raises(CmsError) as caught:
        connect(wp.url).fetch("11", "de")
    assert "waf_blocked" in str(caught.value)
    assert token not in str(caught.value) and APP_PASSWORD not in str(caught.value)
