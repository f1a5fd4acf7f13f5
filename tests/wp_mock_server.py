"""A stand-in for a WordPress site's REST API v2 on 127.0.0.1, in WordPress's wire format.

Posts, pages and revisions are the ones WordPress core records for its own API client
tests (`../shared/data/wordpress-rest-fixtures`, see SOURCE.md there): post 4 with
revision 5 and autosave 6, page 7 with revision 8 and autosave 9. Post 4 is labelled a
q2c message block here, and more q2c posts are made from its shape, one per state:

| id | status | q2c labels | modified (UTC) | revisions |
| --- | --- | --- | --- | --- |
| 4 | publish | block `fixture_notice`, top | 2017-02-14 00:00:00 | 5, autosave 6 |
| 11 | publish | legal `late_payment_de`, late_payment, de, DE | 2026-03-01 10:00:00 | 12, 13 |
| 14 | draft | legal `late_payment_default`, late_payment | 2026-03-02 09:00:00 | none |
| 15 | pending | block `year_end_closure`, bottom, segment enterprise | 2026-03-02 09:00:00 | 21 |
| 16 | trash | legal `reverse_charge_eu_v0`, reverse_charge_eu | 2026-03-03 08:00:00 | 22 |
| 17 | private | block `account_manager`, top | 2026-03-03 09:00:00 | 23 |
| 18 | future | block `e_invoicing_campaign`, top | 2026-03-03 10:00:00 | 24 |
| 19 | publish | none (an ordinary blog post, category Uncategorized) | 2026-03-04 | 25 |
| 20 | publish | category q2c-legal but no q2c-id tag | 2026-03-05 | 26 |

Post 99 answers 410 Gone (as a site behind a cache that remembers deletions does); any
other unknown id answers WordPress's 404 `rest_post_invalid_id`.

Auth is an application password (HTTP Basic). Without it the API answers as WordPress
does: published posts only; `context=edit` is 401 `rest_forbidden_context`; a non-public
status in `status=` is 400 `rest_invalid_param`; a draft or trashed post is 401
`rest_forbidden`; revisions are 401 `rest_cannot_read`. A wrong password counts as none
(WordPress 6.1 answers so; tests/test_cms_wordpress.py checks these against the real
one). Collections page with `page`/`per_page` and send `X-WP-Total`,
`X-WP-TotalPages` and `Link`; they filter by `status`, `categories`, `modified_after` and
sort by `orderby`/`order`; `_embed=wp:term` embeds the categories and tags.
`fail(...)` (from ProviderServer) scripts 429 with `Retry-After` and 5xx answers.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import html
import json
from typing import Any
from urllib.parse import urlencode

from provider_servers import SHARED_DATA, ProviderServer, Seen

FIXTURES = SHARED_DATA / "wordpress-rest-fixtures"
USER = "content-editor"
APP_PASSWORD = "abcd EFGH 1234 ijkl MNOP 5678"
GONE_ID = 99
PUBLIC = ("publish",)
_ERRORS = {
    "rest_forbidden_context": "Sorry, you are not allowed to edit posts in this post type.",
    "rest_forbidden": "Sorry, you are not allowed to do that.",
    "rest_cannot_read": "Sorry, you are not allowed to view revisions of this post.",
    "rest_post_invalid_id": "Invalid post ID.",
    "rest_post_invalid_page_number": "The page number requested is larger than the number "
                                     "of pages available.",
    "rest_gone": "This content has been permanently removed.",
    "rest_no_route": "No route was found matching the URL and request method.",
}

# Terms: WordPress's default category, the two q2c categories and the q2c tags.
CATEGORIES = {1: "uncategorized", 2: "q2c-legal", 3: "q2c-block"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class WordPressMockServer(ProviderServer):
    """The REST API of one WordPress site (GMT offset 0), answering as WordPress 6 does."""

    def __init__(self, page_size: int = 10) -> None:
        super().__init__(page_size)
        self.reset()

    def reset(self) -> None:
        """Back to the posts above, with no scripted faults and no requests seen."""
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.language = "en_US"
            self.tags: dict[int, str] = {}
            self.posts: dict[int, dict] = {}
            self.pages: dict[int, dict] = {}
            self.revisions: dict[int, list[dict]] = {}
            self._next_id = 100
            self._seed()

    # Data

    def _seed(self) -> None:
        post = load("post.json")
        post.update(categories=[3], tags=self._tag_ids(
            "q2c-id:fixture_notice", "q2c-placement:top"))
        self.posts[4] = post
        self.revisions[4] = load("post-revisions.json")
        page = load("page.json")
        page["meta"] = {"meta_key": "", "q2c_kind": "legal", "q2c_id": "late_payment_fr",
                        "q2c_case": "late_payment", "q2c_locale": "fr",
                        "q2c_country": "FR, BE"}
        self.pages[7] = page
        self.revisions[7] = load("page-revisions.json")
        legal, block = 2, 3
        self._add(11, "publish", "2026-03-01T10:00:00", legal,
                  ["q2c-id:late_payment_de", "q2c-case:late_payment", "q2c-locale:de",
                   "q2c-country:DE"], "Verzugszinsen",
                  "<p>Verzugszinsen: 9 Prozentpunkte über dem Basiszinssatz.</p>\n",
                  revisions=[("2026-02-27T08:00:00", "<p>Verzugszinsen (Entwurf).</p>\n"),
                             ("2026-03-01T10:00:00", None)], first_revision=12)
        self._add(14, "draft", "2026-03-02T09:00:00", legal,
                  ["q2c-id:late_payment_default", "q2c-case:late_payment"], "Late payment",
                  "<p>Late payment interest applies.</p>\n", revisions=[])
        self._add(15, "pending", "2026-03-02T09:00:00", block,
                  ["q2c-id:year_end_closure", "q2c-placement:bottom",
                   "q2c-segment:Enterprise"], "Year-end closure",
                  "<p>Our offices close from 24 December.</p>\n", first_revision=21)
        self._add(16, "trash", "2026-03-03T08:00:00", legal,
                  ["q2c-id:reverse_charge_eu_v0", "q2c-case:reverse_charge_eu"],
                  "Reverse charge", "<p>Reverse charge.</p>\n", first_revision=22)
        self._add(17, "private", "2026-03-03T09:00:00", block,
                  ["q2c-id:account_manager", "q2c-placement:top"], "Your account manager",
                  "<p>Your account manager is Kim.</p>\n", first_revision=23)
        self._add(18, "future", "2026-03-03T10:00:00", block,
                  ["q2c-id:e_invoicing_campaign", "q2c-placement:top"], "E-invoicing",
                  "<p>Switch to e-invoices.</p>\n", first_revision=24)
        self._add(19, "publish", "2026-03-04T10:00:00", 1, [], "Company picnic",
                  "<p>Picnic on Friday.</p>\n", first_revision=25)
        self._add(20, "publish", "2026-03-05T10:00:00", legal, ["q2c-case:late_payment"],
                  "Untagged legal text", "<p>Untagged.</p>\n", first_revision=26)

    def _tag_ids(self, *names: str) -> list[int]:
        ids = []
        for name in names:
            found = next((key for key, value in self.tags.items() if value == name), None)
            if found is None:
                found = 30 + len(self.tags)
                self.tags[found] = name
            ids.append(found)
        return ids

    def _add(self, post_id: int, status: str, modified: str, category: int, tags: list[str],
             title: str, content: str, revisions: list | None = None,
             first_revision: int = 0) -> None:
        post = copy.deepcopy(load("post.json"))
        slug = title.lower().replace(" ", "-")
        post.update(
            id=post_id, status=status, slug=slug, modified=modified, modified_gmt=modified,
            date=modified, date_gmt=None if status in ("draft", "pending") else modified,
            link=f"http://example.org/?p={post_id}", guid={"rendered":
                                                            f"http://example.org/?p={post_id}"},
            title={"rendered": html.escape(title, quote=False)},
            content={"rendered": content, "protected": False},
            excerpt={"rendered": "", "protected": False}, author=2,
            categories=[category], tags=self._tag_ids(*tags), meta={"meta_key": ""},
        )
        self.posts[post_id] = post
        if revisions is None:
            revisions = [(modified, None)]
        self.revisions[post_id] = []
        for number, (saved, body) in enumerate(revisions):
            self._revise(post, first_revision + number, saved, body or content)

    def _revise(self, post: dict, revision_id: int, saved: str, content: str) -> None:
        revision = load("post-revision.json")
        revision.update(
            id=revision_id, parent=post["id"], slug=f"{post['id']}-revision-v1", date=saved,
            date_gmt=saved, modified=saved, modified_gmt=saved,
            guid={"rendered": f"http://example.org/?p={revision_id}"},
            title=dict(post["title"]), content={"rendered": content}, excerpt={"rendered": ""},
        )
        self.revisions[post["id"]].insert(0, revision)

    def save(self, post_id: int, modified: str, content: str | None = None,
             status: str | None = None) -> int | None:
        """Change a post as the editor does; a content change saves a revision (its id)."""
        with self.lock:
            post = self.posts[post_id]
            post.update(modified=modified, modified_gmt=modified)
            if status:
                post["status"] = status
            if content is None:
                return None
            post["content"] = {"rendered": content, "protected": False}
            self._next_id += 1
            self._revise(post, self._next_id, modified, content)
            return self._next_id

    def delete(self, post_id: int) -> None:
        with self.lock:
            del self.posts[post_id]

    # HTTP

    def _answer(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        scripted = self._scripted(seen)
        if scripted is not None:
            return scripted
        # A wrong application password is taken as no credentials, as WordPress 6.1 does.
        expected = base64.b64encode(f"{USER}:{APP_PASSWORD}".encode()).decode()
        signed_in = seen.headers.get("Authorization", "") == f"Basic {expected}"
        status, payload, *headers = self.route(seen, signed_in)
        return status, payload, (headers[0] if headers else {})

    def route(self, seen: Seen, signed_in: bool = False) -> tuple:
        parts = seen.path.removeprefix("/wp-json/wp/v2/").strip("/").split("/")
        if seen.query.get("context") == "edit" and not signed_in:
            return self._error(401, "rest_forbidden_context")
        if parts == ["categories"]:
            wanted = set(seen.query.get("slug", "").split(","))
            return 200, [self._term(key, "category", slug)
                         for key, slug in CATEGORIES.items() if slug in wanted]
        if parts == ["settings"]:
            if not signed_in:
                return self._error(401, "rest_forbidden")
            return 200, {"title": "Northwind", "language": self.language, "timezone": "UTC"}
        store = {"posts": self.posts, "pages": self.pages}.get(parts[0])
        if store is None:
            return self._error(404, "rest_no_route")
        if len(parts) == 1:
            return self._collection(store, seen, signed_in)
        post_id = int(parts[1]) if parts[1].isdigit() else -1
        if post_id == GONE_ID:
            return self._error(410, "rest_gone")
        if post_id not in store:
            return self._error(404, "rest_post_invalid_id")
        post = store[post_id]
        if len(parts) == 2:
            if post["status"] not in PUBLIC and not signed_in:
                return self._error(401, "rest_forbidden")
            return 200, self._shaped(post, parts[0], seen)
        if parts[2] == "revisions":
            if not signed_in:
                return self._error(401, "rest_cannot_read")
            rows = self.revisions.get(post_id, [])
            if len(parts) == 4:
                row = next((r for r in rows if str(r["id"]) == parts[3]), None)
                if row is None:
                    return self._error(404, "rest_post_invalid_id")
                return 200, row
            return self._paged(rows, seen, parts)
        return self._error(404, "rest_no_route")

    def _collection(self, store: dict[int, dict], seen: Seen, signed_in: bool) -> tuple:
        query = seen.query
        statuses = query.get("status", "publish").split(",")
        if not signed_in and set(statuses) - set(PUBLIC):
            return 400, {"code": "rest_invalid_param", "message": "Invalid parameter(s): "
                         "status", "data": {"status": 400,
                                            "params": {"status": "Status is forbidden."}}}
        rows = [post for post in store.values() if post["status"] in statuses]
        if query.get("categories"):
            wanted = {int(item) for item in query["categories"].split(",")}
            rows = [post for post in rows if wanted & set(post.get("categories", []))]
        if query.get("modified_after"):
            after = dt.datetime.fromisoformat(query["modified_after"]).astimezone(dt.UTC)
            rows = [post for post in rows
                    if dt.datetime.fromisoformat(post["modified_gmt"] + "+00:00") > after]
        key = "modified_gmt" if query.get("orderby") == "modified" else "date"
        rows.sort(key=lambda post: (str(post.get(key) or ""), post["id"]),
                  reverse=query.get("order", "desc") == "desc")
        kind = seen.path.rstrip("/").rsplit("/", 1)[-1]
        return self._paged([self._shaped(post, kind, seen) for post in rows], seen, [kind])

    def _paged(self, rows: list[dict], seen: Seen, parts: list[str]) -> tuple:
        per_page = int(seen.query.get("per_page", self.page_size))
        page = int(seen.query.get("page", 1))
        if not 1 <= per_page <= 100:
            return 400, {"code": "rest_invalid_param", "message": "Invalid parameter(s): "
                         "per_page", "data": {"status": 400}}
        total_pages = max(1, -(-len(rows) // per_page))
        if rows and page > total_pages:
            return self._error(400, "rest_post_invalid_page_number")
        headers = {"X-WP-Total": str(len(rows)), "X-WP-TotalPages": str(total_pages)}
        base = f"{self.url}/wp-json/wp/v2/{'/'.join(parts)}"
        links = []
        if page > 1:
            links.append(f'<{base}?{urlencode({**seen.query, "page": page - 1})}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{base}?{urlencode({**seen.query, "page": page + 1})}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, rows[(page - 1) * per_page: page * per_page], headers

    def _shaped(self, post: dict, kind: str, seen: Seen) -> dict:
        shaped = copy.deepcopy(post)
        if seen.query.get("context") == "edit":
            shaped["title"]["raw"] = html.unescape(shaped["title"]["rendered"])
            shaped["content"]["raw"] = shaped["content"]["rendered"]
        revisions = self.revisions.get(post["id"], [])
        base = f"{self.url}/wp-json/wp/v2/{kind}/{post['id']}"
        links: dict[str, Any] = {
            "self": [{"href": base}], "collection": [{"href": base.rsplit("/", 1)[0]}],
            "version-history": [{"count": len(revisions), "href": base + "/revisions"}],
        }
        if revisions:
            newest = max(revisions, key=lambda row: row["id"])
            links["predecessor-version"] = [{"id": newest["id"],
                                             "href": f"{base}/revisions/{newest['id']}"}]
        shaped["_links"] = links
        if "_embed" in seen.query and kind == "posts":
            shaped["_embedded"] = {"wp:term": [
                [self._term(key, "category", CATEGORIES[key]) for key in post["categories"]],
                [self._term(key, "post_tag", None) for key in post["tags"]],
            ]}
        return shaped

    def _term(self, term_id: int, taxonomy: str, slug: str | None) -> dict:
        name = slug if slug is not None else self.tags[term_id]
        slug = slug or "".join(ch for ch in name.lower() if ch.isalnum() or ch in "-_")
        return {"id": term_id, "link": f"http://example.org/?tag={slug}",
                "name": html.escape(name, quote=False), "slug": slug, "taxonomy": taxonomy,
                "_links": {"self": [{"href": f"{self.url}/wp-json/wp/v2/terms/{term_id}"}]}}

    def _error(self, status: int, code: str) -> tuple:
        return status, {"code": code, "message": _ERRORS[code], "data": {"status": status}}, {}

    def error_body(self, status: int) -> Any:
        if status == 429:
            return {"code": "rest_too_many_requests", "message": "Too many requests.",
                    "data": {"status": 429}}
        return {"code": "internal_server_error", "message": "<p>There has been a critical "
                "error on this website.</p>", "data": {"status": status}}
