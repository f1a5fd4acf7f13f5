"""Legal texts and message blocks from WordPress, over its REST API v2 (`/wp-json/wp/v2/`).

Content owners write a legal text or a message block as an ordinary WordPress post (or a
page, or a custom post type: `post_type` is the REST base the connector reads, `posts` by
default) and say what it is for with what the editor offers without a plugin:

- **Kind**: the category `q2c-legal` (a legal text) or `q2c-block` (a message block).
  Posts in neither category are not q2c content and are left alone.
- **Everything else**: tags named `q2c-<field>:<value>`. `q2c-id:late_payment_de` names the
  q2c content id (required); a legal text needs `q2c-case:late_payment` (one of
  `reverse_charge_eu`, `tax_exemption`, `late_payment`), a block `q2c-placement:top` or
  `q2c-placement:bottom`. Targeting tags, any number of each: `q2c-segment:enterprise`,
  `q2c-country:DE`, `q2c-language:de`, `q2c-brand:northwind`, `q2c-channel:pdf`; none
  means anyone.
- **Locale**: WordPress has one language per site and none per post. A post tagged
  `q2c-locale:de-AT` is in that locale; otherwise it is in the connector's default locale
  (`Q2C_WORDPRESS_LOCALE`), else the site language's primary subtag (site language
  `de_DE` gives `de`, read from `/wp/v2/settings` where the credentials may), else `en`.
  Each language version of one q2c item is its own post with the same `q2c-id` tag.
- Pages and custom post types, which have no categories or tags unless a plugin adds them,
  say the same in post meta registered with `show_in_rest`: `q2c_kind` (`legal`,
  `blocks`), `q2c_id`, `q2c_case`, `q2c_placement`, `q2c_locale`, `q2c_segment`,
  `q2c_country`, `q2c_language`, `q2c_brand`, `q2c_channel` (comma-separated lists).
  Meta, where set, wins over tags.

States: `publish` is approved (approved at the post's last save; WordPress does not record
who pressed Publish, so `approved_by` stays empty and the author is kept in `metadata`).
`draft`, `pending`, `future`, `private` and any status a plugin adds are drafts; they are
readable only with an application password (`context=edit`). WordPress keeps one state per
post, so a post that is not `publish` has no live copy: its approved versions are retired
from when q2c sees it (`withdraws_approved`), even when the status change came with an edit
or a new revision. `trash` is retired from the
moment it was trashed; a post deleted outright answers 404 (410 behind some caches), and
`fetch` raises `CmsNotFound` for it as for a post taken out of the q2c categories. Without
credentials q2c sees published posts only, and a post that stops being public answers
401, which `fetch` reports as not found.

Versions are revisions (`/wp/v2/<type>/<id>/revisions`): WordPress saves one on every
change of title, content or excerpt, and the newest always matches the post. A post's
version is its newest revision id; a draft saved only once has none yet and is versioned
`modified:<modified_gmt>`. Autosaves are unsaved editing and never a version. Fetching an
older revision gives a retired item (retired when the next revision was saved), since
WordPress keeps no status per revision; an autosave fetched by id is a draft. The body is
`content.rendered`, the HTML WordPress publishes; q2c hashes it and sanitizes it later.

Changes are listed by `modified_after`, `orderby=modified`, `order=asc`, `page` and
`per_page`, reading `X-WP-TotalPages`. The cursor is the last modification time seen
(UTC) and the posts seen at that second with a hash of each (WordPress keeps whole
seconds, and a post may change twice in one), so a listing resumes exactly there; each page
starts again from the newest time seen, so a post edited during a listing is listed again
at the end instead of pushing another one past the page boundary. A post deleted outright
leaves no trace in a listing: the webhook or the reconcile (fetching what q2c knows) finds it.

Publish events: WordPress does not sign webhooks, so q2c ships a small must-use plugin
(`WEBHOOK_PLUGIN`, for `wp-content/mu-plugins/`) that posts JSON
`{"id", "action", "post_id", "post_type", "status", "modified_gmt", "locale", "revision"}`
(locale only when tagged, revision only when there is one) on every change of a q2c
post, with `X-Q2C-Timestamp: <unix seconds>` and `X-Q2C-Signature: sha256=<hex>`, the
HMAC-SHA256 with the shared secret (`Q2C_WORDPRESS_WEBHOOK_SECRET`) of the timestamp, a
dot and the raw body. `verify_event` refuses a bad signature and a timestamp more than
five minutes off.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from q2c.content.cms.base import (
    ChangePage,
    CmsError,
    CmsItem,
    CmsNotFound,
    CmsUnavailable,
    EventRejected,
    ItemRef,
    PublishEvent,
    cms_client_options,
)
from q2c.content.legal_cases import CASES
from q2c.content.registry import CHANNELS, PLACEMENTS, TARGETING_FIELDS, normalize_language
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.errors import (
    AuthError,
    ConfigurationError,
    ConnectorError,
    TransientError,
)
from q2c.sources.connectors.http import HttpClient

log = logging.getLogger(__name__)

SOURCE = "wordpress"
PROVIDER = "WordPress"
API = "wp-json/wp/v2/"
APPROVED_STATUS = "publish"
RETIRED_STATUS = "trash"
# What an authenticated listing asks for: `status=any` leaves out the trash.
LISTED_STATUSES = ("publish", "future", "draft", "pending", "private", "trash")
CATEGORY_KINDS = {"q2c-legal": "legal", "q2c-block": "blocks"}
KIND_NAMES = {"legal": "legal", "blocks": "blocks", "block": "blocks"}
TAG_PREFIX = "q2c-"
META_PREFIX = "q2c_"
FIELDS = ("id", "kind", "case", "placement", "locale", *TARGETING_FIELDS)
FALLBACK_LOCALE = "en"
SIGNATURE_HEADER = "X-Q2C-Signature"
TIMESTAMP_HEADER = "X-Q2C-Timestamp"
EVENT_ACTIONS = ("publish", "update", "unpublish", "trash", "delete")
EVENT_TOLERANCE = dt.timedelta(minutes=5)
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_AUTOSAVE = re.compile(r"^\d+-autosave-v\d+$")
_UNVERSIONED = "modified:"

WEBHOOK_PLUGIN = r"""<?php
/**
 * Plugin Name: q2c publish events
 * Description: Tells q2c when a q2c legal text or message block changes. Define
 *   Q2C_WEBHOOK_URL and Q2C_WEBHOOK_SECRET in wp-config.php.
 */
function q2c_send_event( $post, $action ) {
	if ( ! defined( 'Q2C_WEBHOOK_URL' ) || ! defined( 'Q2C_WEBHOOK_SECRET' ) ) {
		return;
	}
	if ( 'revision' === $post->post_type || 'auto-draft' === $post->post_status ) {
		return;
	}
	$q2c = has_term( array( 'q2c-legal', 'q2c-block' ), 'category', $post )
		|| '' !== (string) get_post_meta( $post->ID, 'q2c_id', true );
	if ( ! $q2c ) {
		return;
	}
	$event = array(
		'id'           => wp_generate_uuid4(),
		'action'       => $action,
		'post_id'      => $post->ID,
		'post_type'    => $post->post_type,
		'status'       => $post->post_status,
		'modified_gmt' => $post->post_modified_gmt,
	);
	$locale = (string) get_post_meta( $post->ID, 'q2c_locale', true );
	foreach ( wp_get_post_tags( $post->ID, array( 'fields' => 'names' ) ) as $tag ) {
		if ( '' === $locale && 0 === stripos( $tag, 'q2c-locale:' ) ) {
			$locale = trim( substr( $tag, strlen( 'q2c-locale:' ) ) );
		}
	}
	if ( '' !== $locale ) {
		$event['locale'] = $locale;
	}
	foreach ( wp_get_post_revisions( $post->ID ) as $revision ) {
		if ( ! wp_is_post_autosave( $revision ) ) {
			$event['revision'] = $revision->ID;
			break;
		}
	}
	$body = wp_json_encode( $event );
	$timestamp = (string) time();
	wp_remote_post( Q2C_WEBHOOK_URL, array(
		'timeout' => 5,
		'body'    => $body,
		'headers' => array(
			'Content-Type'    => 'application/json',
			'X-Q2C-Timestamp' => $timestamp,
			'X-Q2C-Signature' => 'sha256=' . hash_hmac( 'sha256', $timestamp . '.' . $body,
				Q2C_WEBHOOK_SECRET ),
		),
	) );
}
add_action( 'wp_after_insert_post', function ( $post_id, $post, $update, $before ) {
	$was_public = $before && 'publish' === $before->post_status;
	if ( 'trash' === $post->post_status ) {
		$action = 'trash';
	} elseif ( 'publish' === $post->post_status ) {
		$action = $was_public ? 'update' : 'publish';
	} else {
		$action = $was_public ? 'unpublish' : 'update';
	}
	q2c_send_event( $post, $action );
}, 10, 4 );
add_action( 'before_delete_post', function ( $post_id, $post ) {
	q2c_send_event( $post, 'delete' );
}, 10, 2 );
"""


def map_status(wordpress_status: str) -> str:
    """A WordPress post status as q2c's: only `publish` is approved, `trash` retired."""
    if wordpress_status == APPROVED_STATUS:
        return "approved"
    if wordpress_status == RETIRED_STATUS:
        return "retired"
    return "draft"


@dataclass(frozen=True)
class Labels:
    """What a post says about itself through its category, `q2c-*` tags or `q2c_*` meta."""

    kind: str | None
    values: Mapping[str, tuple[str, ...]]
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def one(self, name: str) -> str | None:
        found = self.values.get(name) or ()
        return found[0] if found else None


def read_labels(post: Mapping[str, Any]) -> Labels:
    """The q2c labels of a post as the REST API gives it (with `_embed=wp:term`)."""
    categories, tags = [], []
    for group in (post.get("_embedded") or {}).get("wp:term") or []:
        for term in group or []:
            if term.get("taxonomy") == "category":
                categories.append(str(term.get("slug") or ""))
            elif term.get("taxonomy") == "post_tag":
                tags.append(html.unescape(str(term.get("name") or "")).strip())
    values: dict[str, list[str]] = {}
    for tag in tags:
        name, colon, value = tag.partition(":")
        name = name.strip().lower()
        if colon and name.startswith(TAG_PREFIX) and name[len(TAG_PREFIX):] in FIELDS:
            values.setdefault(name[len(TAG_PREFIX):], []).append(value.strip())
    meta = post.get("meta") if isinstance(post.get("meta"), Mapping) else {}
    for name in FIELDS:
        raw = meta.get(META_PREFIX + name)
        items = raw if isinstance(raw, list) else str(raw or "").split(",")
        items = [str(item).strip() for item in items if str(item).strip()]
        if items:
            values[name] = items
    kind = next((CATEGORY_KINDS[slug] for slug in categories if slug in CATEGORY_KINDS), None)
    if values.get("kind"):
        kind = KIND_NAMES.get(values["kind"][0].lower(), values["kind"][0])
    return Labels(kind, {key: tuple(items) for key, items in values.items()},
                  tuple(categories), tuple(tags))


class WordPressConnector:
    """One WordPress site's q2c posts (one post type) as a `CmsConnector`.

    Attributes:
        client: The HTTP client, already carrying Basic auth with the application password
            when `authenticated`.
        authenticated: Whether requests carry credentials; only then are drafts, the trash
            and revisions readable (`context=edit`).
        post_type: The REST base of the post type: `posts`, `pages`, a custom type's.
        webhook_secret: The shared secret of the publish-event plugin.
        default_locale: The locale of posts without a `q2c-locale` tag; None reads the
            site language.
        page_size: `per_page` of listings (WordPress allows at most 100).
    """

    source = SOURCE

    def __init__(
        self, client: HttpClient, *, authenticated: bool, post_type: str = "posts",
        webhook_secret: str | None = None, default_locale: str | None = None,
        page_size: int = 100, clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if not 1 <= page_size <= 100:
            raise CmsError(f"WordPress lists 1 to 100 items per page, not {page_size}")
        self.client = client
        self.authenticated = authenticated
        self.post_type = post_type.strip("/")
        self.webhook_secret = webhook_secret
        self.page_size = page_size
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._locale = normalize_language(default_locale) or None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, page_size: int = 100,
        clock: Callable[[], dt.datetime] | None = None, **client_options: Any,
    ) -> WordPressConnector:
        """Q2C_WORDPRESS_URL (the site address), Q2C_WORDPRESS_USER and
        Q2C_WORDPRESS_APP_PASSWORD (an application password; both or neither),
        Q2C_WORDPRESS_WEBHOOK_SECRET, and optionally Q2C_WORDPRESS_POST_TYPE (`posts`) and
        Q2C_WORDPRESS_LOCALE (the locale of untagged posts)."""
        optional = {name: EnvValue(f"Q2C_WORDPRESS_{name.upper()}", "") for name in
                    ("user", "app_password", "webhook_secret", "post_type", "locale")}
        try:
            values = read_env(PROVIDER, {
                "url": EnvValue("Q2C_WORDPRESS_URL", what="the site address, e.g. "
                                "https://www.example.com"),
                **optional,
            }, env)
        except ConfigurationError as exc:
            raise CmsError(str(exc)) from exc
        user, password = values["user"], values["app_password"]
        if bool(user) != bool(password):
            raise CmsError(
                "WordPress: set both Q2C_WORDPRESS_USER and Q2C_WORDPRESS_APP_PASSWORD (an "
                "application password of that user), or neither to read published posts only"
            )
        headers = {"Accept": "application/json"}
        token = ""  # the Basic credentials, masked in messages like the password
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        client = HttpClient(
            provider=PROVIDER, base_url=values["url"], headers=headers,
            auth_hint=("Set Q2C_WORDPRESS_USER and Q2C_WORDPRESS_APP_PASSWORD to a user and "
                       "one of its application passwords (Users > Profile > Application "
                       "Passwords); reading drafts needs a user who may edit them (Editor)."),
            error_text=_error_text, secrets=(password, token),
            **cms_client_options(client_options),
        )
        return cls(client, authenticated=bool(user), post_type=values["post_type"] or "posts",
                   webhook_secret=values["webhook_secret"] or None,
                   default_locale=values["locale"] or None, page_size=page_size, clock=clock)

    # Listing

    def changes_since(self, cursor: str | None) -> Iterator[ChangePage]:
        """Pages of q2c posts modified since `cursor`, oldest first (see the module doc)."""
        position = _Cursor.parse(cursor)
        category_ids = self._q2c_categories()
        if category_ids == ():
            yield ChangePage((), position.encode() if cursor else None, False)
            return
        page = 1
        while True:
            reply = self._get(self.post_type, self._list_params(position, page, category_ids),
                              f"listing {self.post_type}")
            rows = [row for row in _listed_rows(reply.data, self.post_type)
                    if not position.has_seen(row)]
            refs = tuple(ref for row in rows if (ref := self._listed_ref(row)) is not None)
            advanced = position.after(rows)
            has_more = page < _total_pages(reply.headers)
            log.info("WordPress: %d q2c %s of %d changed since %s (page %d)", len(refs),
                     self.post_type, len(rows), position.moment or "the start", page)
            yield ChangePage(refs, advanced.encode() or cursor, has_more)
            if not has_more:
                return
            page = 1 if advanced.moment != position.moment else page + 1
            position = advanced

    def _list_params(
        self, position: _Cursor, page: int, category_ids: tuple[int, ...] | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "orderby": "modified", "order": "asc", "per_page": self.page_size, "page": page,
            "_embed": "wp:term",
        }
        if self.authenticated:
            params.update(context="edit", status=",".join(LISTED_STATUSES))
        if position.moment is not None:
            # `modified_after` is exclusive and counts whole seconds: ask from the second
            # before, and leave out what the cursor has seen at its own second.
            since = position.moment - dt.timedelta(seconds=1)
            params["modified_after"] = since.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        if category_ids:
            params["categories"] = ",".join(map(str, category_ids))
        return params

    def _q2c_categories(self) -> tuple[int, ...] | None:
        """Ids of the q2c categories for the listing filter; None when not filtering (a
        post type without categories), () when the site has neither category yet."""
        if self.post_type != "posts":
            return None
        reply = self._get("categories", {"slug": ",".join(CATEGORY_KINDS), "per_page": 100},
                          "reading the q2c categories")
        found = tuple(sorted(int(row["id"]) for row in reply.data or []))
        if not found:
            log.warning("WordPress: the site has no category %s; no post is q2c content",
                        " or ".join(CATEGORY_KINDS))
        return found

    def _listed_ref(self, post: Mapping[str, Any]) -> ItemRef | None:
        labels = read_labels(post)
        if labels.kind is None:
            return None
        problem = _label_problem(labels)
        if problem:
            log.warning("WordPress: %s %s is skipped: %s", self.post_type, post.get("id"),
                        problem)
            return None
        return ItemRef(
            external_id=str(post["id"]), locale=self._post_locale(labels),
            source_version=_linked_version(post), modified_at=_gmt(post["modified_gmt"]),
        )

    # Items and versions

    def fetch(self, external_id: str, locale: str, version: str | None = None) -> CmsItem:
        """One q2c post in `locale` at `version` (a revision id; None: the current one)."""
        post = self._post(external_id)
        labels = self._checked_labels(post, locale)
        if not self.authenticated:
            current = _linked_version(post)
            if version not in (None, current):
                raise CmsError(
                    f"WordPress {self.post_type} {external_id}: reading revision {version} "
                    "needs an application password (Q2C_WORDPRESS_USER, "
                    "Q2C_WORDPRESS_APP_PASSWORD)")
            return self._item(post, labels, post, current)
        revisions = self._revisions(external_id)
        current = _current_version(post, revisions)
        if version in (None, current):
            return self._item(post, labels, post, current)
        by_id = {str(row["id"]): row for row in revisions}
        if version not in by_id:
            known = ", ".join(ref.source_version for ref in self._refs(post, labels, revisions))
            raise CmsNotFound(
                f"WordPress {self.post_type} {external_id} has no revision {version} "
                f"(its versions: {known})")
        row = by_id[version]
        if _AUTOSAVE.match(str(row.get("slug") or "")):
            return self._item(post, labels, row, version, status="draft",
                              source_status="autosave")
        newer = [_gmt(other["date_gmt"]) for other in revisions
                 if int(other["id"]) > int(version) and not _is_autosave(other)]
        return self._item(post, labels, row, version, status="retired",
                          source_status="inherit", retired_at=min(newer, default=None))

    def versions(self, external_id: str, locale: str) -> list[ItemRef]:
        """The post's revisions, oldest first; without credentials only the current one."""
        post = self._post(external_id)
        labels = self._checked_labels(post, locale)
        if not self.authenticated:
            return [ItemRef(str(post["id"]), self._post_locale(labels), _linked_version(post),
                            _gmt(post["modified_gmt"]))]
        return self._refs(post, labels, self._revisions(external_id))

    def _refs(
        self, post: Mapping[str, Any], labels: Labels, revisions: list[Mapping[str, Any]]
    ) -> list[ItemRef]:
        locale = self._post_locale(labels)
        saved = sorted((row for row in revisions if not _is_autosave(row)),
                       key=lambda row: int(row["id"]))
        if not saved:
            return [ItemRef(str(post["id"]), locale, _current_version(post, []),
                            _gmt(post["modified_gmt"]))]
        return [ItemRef(str(post["id"]), locale, str(row["id"]), _gmt(row["modified_gmt"]))
                for row in saved]

    def _post(self, external_id: str) -> Mapping[str, Any]:
        if not str(external_id).isdigit():
            raise CmsNotFound(f"WordPress post ids are numbers, not {external_id!r}")
        params = {"_embed": "wp:term"}
        if self.authenticated:
            params["context"] = "edit"
        data = self._get(f"{self.post_type}/{external_id}", params,
                         f"reading {self.post_type} {external_id}", single=True).data
        if not isinstance(data, Mapping) or not data.get("id") or not data.get("modified_gmt"):
            raise CmsError(
                f"WordPress: reading {self.post_type} {external_id}: the answer is not a post "
                "with `id` and `modified_gmt`; check Q2C_WORDPRESS_URL and the REST API")
        return data

    def _revisions(self, external_id: str) -> list[Mapping[str, Any]]:
        rows: list[Mapping[str, Any]] = []
        page = 1
        while True:
            reply = self._get(f"{self.post_type}/{external_id}/revisions",
                              {"per_page": 100, "page": page},
                              f"reading the revisions of {self.post_type} {external_id}")
            rows.extend(reply.data or [])
            if page >= _total_pages(reply.headers):
                return rows
            page += 1

    def _checked_labels(self, post: Mapping[str, Any], locale: str) -> Labels:
        labels = read_labels(post)
        where = f"WordPress {self.post_type} {post.get('id')} ({_title(post)!r})"
        if labels.kind is None:
            # Taken out of the q2c categories: for q2c the item is gone.
            raise CmsNotFound(
                f"{where} is not q2c content: put it in the category "
                f"{' or '.join(CATEGORY_KINDS)} (or set the post meta q2c_kind)")
        problem = _label_problem(labels)
        if problem:
            raise CmsError(f"{where}: {problem}")
        own = self._post_locale(labels)
        if normalize_language(locale) != own:
            raise CmsNotFound(
                f"{where} is in {own}, not {locale}: each language version of a q2c item is "
                "its own post, tagged q2c-locale:<tag> with the same q2c-id")
        return labels

    def _item(
        self, post: Mapping[str, Any], labels: Labels, row: Mapping[str, Any], version: str,
        status: str | None = None, source_status: str | None = None,
        retired_at: dt.datetime | None = None,
    ) -> CmsItem:
        source_status = source_status or str(post.get("status") or "")
        status = status or map_status(source_status)
        modified = _gmt(row["modified_gmt"])
        if status == "retired" and retired_at is None:
            retired_at = modified
        targeting = {name: _targeting_values(name, labels.values[name])
                     for name in TARGETING_FIELDS if labels.values.get(name)}
        return CmsItem(
            source=SOURCE, external_id=str(post["id"]), locale=self._post_locale(labels),
            source_version=version, source_status=source_status, status=status,
            kind=str(labels.kind), content_id=str(labels.one("id")), title=_title(row),
            body=str((row.get("content") or {}).get("rendered") or "").encode("utf-8"),
            media_type="text/html", modified_at=modified,
            approved_at=modified if status == "approved" else None, retired_at=retired_at,
            targeting=targeting,
            # One state per post: a current post that is not `publish` has no live copy.
            withdraws_approved=row is post and status != "approved",
            case=labels.one("case") if labels.kind == "legal" else None,
            placement=labels.one("placement") if labels.kind == "blocks" else None,
            metadata={"post_type": self.post_type, "slug": post.get("slug"),
                      "link": post.get("link"), "author": post.get("author"),
                      "revision_author": row.get("author") if row is not post else None,
                      "categories": list(labels.categories), "tags": list(labels.tags)},
        )

    def _post_locale(self, labels: Labels) -> str:
        tagged = normalize_language(labels.one("locale"))
        return tagged or self._site_locale()

    def _site_locale(self) -> str:
        if self._locale is None:
            self._locale = FALLBACK_LOCALE
            if self.authenticated:
                try:
                    reply = self.client.get(API + "settings")
                except AuthError:
                    log.info("WordPress: the user may not read the site language; posts "
                             "without a q2c-locale tag are %s", FALLBACK_LOCALE)
                except ConnectorError as exc:
                    raise _translated(exc, "reading the site language") from exc
                else:
                    language = str((reply.data or {}).get("language") or "")
                    self._locale = normalize_language(language.split("_")[0]) or FALLBACK_LOCALE
        return self._locale

    # Events

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        """Check an event of the q2c plugin (`WEBHOOK_PLUGIN`): signature, time, shape."""
        if not self.webhook_secret:
            raise EventRejected("WordPress event refused: no webhook secret is configured; "
                                "set Q2C_WORDPRESS_WEBHOOK_SECRET to the plugin's secret")
        lower = {str(name).lower(): str(value) for name, value in headers.items()}
        stamp = lower.get(TIMESTAMP_HEADER.lower(), "").strip()
        signature = lower.get(SIGNATURE_HEADER.lower(), "").strip()
        if not stamp.isdigit():
            raise EventRejected(f"WordPress event refused: header {TIMESTAMP_HEADER} is "
                                f"missing or not unix seconds ({stamp!r})")
        now = self.clock()
        sent = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        if abs(now - sent) > EVENT_TOLERANCE:
            raise EventRejected(
                f"WordPress event refused: signed at {sent:%Y-%m-%d %H:%M:%S} UTC, more than "
                f"{EVENT_TOLERANCE.seconds // 60} minutes from now ({now:%H:%M:%S} UTC); a "
                "replayed event, or the clocks of WordPress and q2c disagree")
        expected = hmac.new(self.webhook_secret.encode(), stamp.encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, f"sha256={expected}"):
            raise EventRejected(
                f"WordPress event refused: header {SIGNATURE_HEADER} does not match the body "
                "signed with Q2C_WORDPRESS_WEBHOOK_SECRET (expected sha256=<hex> of "
                "'<timestamp>.<raw body>')")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise EventRejected(f"WordPress event refused: the body is not JSON ({exc})") from exc
        post_id = str(data.get("post_id") if isinstance(data, dict) else "")
        action = str(data.get("action") or "") if isinstance(data, dict) else ""
        if not post_id.isdigit() or action not in EVENT_ACTIONS:
            raise EventRejected(
                f"WordPress event refused: it needs a numeric `post_id` and an `action` of "
                f"{', '.join(EVENT_ACTIONS)} (got post_id={post_id!r}, action={action!r})")
        revision = str(data.get("revision") or "")
        return PublishEvent(
            source=SOURCE, external_id=post_id, action=action, received_at=now,
            locale=normalize_language(str(data.get("locale") or "")) or None,
            source_version=revision if revision.isdigit() else None,
            event_id=str(data["id"]) if data.get("id") else None)

    # HTTP

    def _get(self, path: str, params: Mapping[str, Any], what: str, single: bool = False):
        try:
            return self.client.get(API + path, params=params)
        except AuthError as exc:
            if single and not self.authenticated and exc.status == 401:
                raise CmsNotFound(
                    f"WordPress: {what}: the post is not public (any more) and q2c reads "
                    "only published posts without an application password") from exc
            raise _translated(exc, what) from exc
        except ConnectorError as exc:
            raise _translated(exc, what) from exc


@dataclass(frozen=True)
class _Cursor:
    """Where a listing stopped: the newest modification second seen, and each post seen at
    that second as `<id>:<fingerprint>`, a hash of the post as listed. WordPress counts
    whole seconds, so a post can change twice in one; its new fingerprint lists it again.
    Encoded `2026-12-04T10:00:00Z|12:9f2c01ab,15:03d1e4aa`."""

    moment: dt.datetime | None = None
    seen: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str | None) -> _Cursor:
        if not text:
            return cls()
        stamp, _, keys = text.partition("|")
        try:
            moment = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError as exc:
            raise CmsError(
                f"WordPress cursor {text!r} is not `<UTC time>Z|<id>:<hash>,...`; start the "
                "listing again without a cursor") from exc
        return cls(moment, frozenset(key for key in keys.split(",") if key))

    def encode(self) -> str | None:
        if self.moment is None:
            return None
        return f"{self.moment:%Y-%m-%dT%H:%M:%SZ}|{','.join(sorted(self.seen))}"

    def has_seen(self, post: Mapping[str, Any]) -> bool:
        return _gmt(post["modified_gmt"]) == self.moment and _fingerprint(post) in self.seen

    def after(self, posts: list[Mapping[str, Any]]) -> _Cursor:
        position = self
        for post in posts:
            moment = _gmt(post["modified_gmt"])
            if position.moment is None or moment > position.moment:
                position = _Cursor(moment, frozenset({_fingerprint(post)}))
            elif moment == position.moment:
                position = replace(position, seen=position.seen | {_fingerprint(post)})
        return position


def _listed_rows(data: Any, post_type: str) -> list[Mapping[str, Any]]:
    """A listing's posts, refused with the field at fault when WordPress (or what answers
    in its place) sends something else."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise CmsError(f"WordPress: listing {post_type}: the answer is not a JSON list of "
                       "posts; check Q2C_WORDPRESS_URL and Q2C_WORDPRESS_POST_TYPE")
    for row in data:
        if not isinstance(row, Mapping):
            raise CmsError(f"WordPress: listing {post_type}: an entry is not a post: "
                           f"{str(row)[:80]!r}")
        for name in ("id", "modified_gmt"):
            if not row.get(name):
                raise CmsError(f"WordPress: listing {post_type}: post {row.get('id')!r} has "
                               f"no `{name}`")
        try:
            _gmt(row["modified_gmt"])
        except ValueError as exc:
            raise CmsError(f"WordPress: listing {post_type}: post {row['id']} has "
                           f"modified_gmt {row['modified_gmt']!r}, not a time") from exc
    return data


def _fingerprint(post: Mapping[str, Any]) -> str:
    listed = json.dumps(post, sort_keys=True, default=str).encode()
    return f"{post['id']}:{hashlib.sha256(listed).hexdigest()[:8]}"


def _label_problem(labels: Labels) -> str | None:
    """What a q2c post lacks or gets wrong, as the tag to fix; None when it is complete."""
    content_id = labels.one("id") or ""
    if not _SLUG.match(content_id):
        return (f"tag it q2c-id:<content id>, a name such as late_payment_de "
                f"(got {content_id!r})")
    if labels.kind not in KIND_NAMES.values():
        return f"q2c_kind {labels.kind!r} is not legal or blocks"
    if labels.kind == "legal" and labels.one("case") not in CASES:
        return f"tag it q2c-case:<case>, one of {', '.join(CASES)} (got {labels.one('case')!r})"
    if labels.kind == "blocks" and labels.one("placement") not in PLACEMENTS:
        return (f"tag it q2c-placement:<where>, one of {', '.join(PLACEMENTS)} "
                f"(got {labels.one('placement')!r})")
    for name in ("country", "channel"):
        for value in labels.values.get(name, ()):
            if not _targeting_values(name, (value,)):
                return (f"tag q2c-{name}:{value} is not "
                        + ("an ISO 3166 code such as DE" if name == "country"
                           else f"one of {', '.join(CHANNELS)}"))
    return None


def _targeting_values(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    found = set()
    for value in values:
        if name == "country":
            if re.fullmatch(r"[A-Za-z]{2}", value):
                found.add(value.upper())
        elif name == "language":
            found.add(normalize_language(value))
        elif name != "channel" or value.lower() in CHANNELS:
            found.add(value.lower())
    return tuple(sorted(found))


def _is_autosave(row: Mapping[str, Any]) -> bool:
    return bool(_AUTOSAVE.match(str(row.get("slug") or "")))


def _linked_version(post: Mapping[str, Any]) -> str:
    """The newest revision the post links to; an autosave may stand in for it there, which
    only the revision list (with credentials) tells apart."""
    links = (post.get("_links") or {}).get("predecessor-version") or []
    if links and links[0].get("id"):
        return str(links[0]["id"])
    return _UNVERSIONED + str(post["modified_gmt"])


def _current_version(post: Mapping[str, Any], revisions: list[Mapping[str, Any]]) -> str:
    saved = [int(row["id"]) for row in revisions if not _is_autosave(row)]
    return str(max(saved)) if saved else _UNVERSIONED + str(post["modified_gmt"])


def _title(row: Mapping[str, Any]) -> str:
    title = row.get("title") or {}
    if title.get("raw") is not None:
        return str(title["raw"])
    return html.unescape(str(title.get("rendered") or ""))


def _gmt(text: str) -> dt.datetime:
    """A WordPress `*_gmt` time (no zone written) as an aware UTC time."""
    return dt.datetime.fromisoformat(str(text)).replace(tzinfo=dt.UTC)


def _total_pages(headers: Mapping[str, str]) -> int:
    try:
        return int(headers.get("X-WP-TotalPages") or 1)
    except ValueError:
        return 1


def _error_text(data: Any, text: str) -> str:
    if isinstance(data, dict) and data.get("code"):
        return f"{data['code']}: {data.get('message') or ''}".strip()
    return text[:300] if text else "no error text"


def _translated(exc: ConnectorError, what: str) -> CmsError:
    if isinstance(exc, TransientError):
        return CmsUnavailable(f"WordPress: {what}: {exc}; the content in force stays in force")
    if exc.status in (404, 410):
        gone = "is gone (410)" if exc.status == 410 else "does not exist (404)"
        return CmsNotFound(f"WordPress: {what}: it {gone}")
    return CmsError(f"WordPress: {what}: {exc}")
