"""CMS bodies cleaned to an allowlist before any template sees them.

A message block is rendered as a template in the sandbox and printed as markup; a legal
text is printed as text. Whatever an editor, a plugin or an attacker put into the CMS, what
q2c stores, hashes and renders is only:

- text formatting: `p`, `br`, `strong`, `em`, `b`, `i`, `sub`, `sup`, lists, `h3`-`h6`
  (`h1` and `h2` become `h3`: a block never outshouts the document), basic tables,
  blocks that keep lines apart (`div`, `hr`, `blockquote`, `pre`, `dl`/`dt`/`dd`,
  `section`, `article`, `figure`), `span` (and `p`) with `dir` and `lang`;
- links (`a href`) to `https:` and `mailto:` addresses only, with `rel="noopener
  noreferrer"`.

Scripts, styles, frames, objects, forms and their content are dropped; so are every `on*`
and `style` attribute, every image (brand images come as assets, never inline; no remote or
`data:` source can reach a PDF) and therefore every CSS `url()`. Template syntax never
survives: each `{` of a cleaned HTML body is written as `&#123;` (and `}` as `&#125;`), which
a reader sees as the brace and Jinja never sees at all; in a plain-text body a zero-width
space is put between `{` and a following `{`, `%` or `#`.

Bidi embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069) are removed
from every text: they can make an IBAN read backwards, and q2c's templates isolate text
themselves. A body larger than 256 KB or nested deeper than 40 elements is refused (a
`CmsError` naming the item): the document renderer recurses per level, and no notice
needs either.

The cleaning is `nh3` (Rust's ammonia, an HTML5 parser with an allowlist), so markup that
only a browser would repair into a tag is parsed the way a browser would.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3

from q2c.content.cms.base import CmsError, CmsItem

ALLOWED_TAGS = frozenset({
    "p", "br", "strong", "em", "b", "i", "sub", "sup",
    "ul", "ol", "li", "a", "h3", "h4", "h5", "h6", "span",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td",
    "h1", "h2", "div", "hr", "blockquote", "pre", "dl", "dt", "dd",
    "section", "article", "figure", "figcaption",
})
# Dropped with everything inside them: their content is code or controls, never text.
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
    "button", "select", "textarea", "template", "noscript", "svg", "math", "title", "head",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"dir", "lang"},
    "p": {"dir", "lang"},
    "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"},
}
LINK_SCHEMES = frozenset({"https", "mailto"})
TEXT_TYPES = ("text/plain",)
_LANG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_SPAN = re.compile(r"^[1-9][0-9]?$")
_BLOCK_TAGS = frozenset({
    "p", "br", "li", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol", "caption",
    "div", "hr", "blockquote", "pre", "dl", "dt", "dd", "section", "article", "figure",
    "figcaption",
})
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 40
# Embedding, override and isolate controls; LRM and RLM (U+200E, U+200F) are kept.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_BIG_HEADINGS = re.compile(r"<(/?)h[12]>")
_VOID_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr", "param", "keygen",
})
# A start tag that ends an open sibling of its group, as HTML parsing does.
_SIBLINGS = {
    "p": {"p"}, "li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"},
    "td": {"td", "th"}, "th": {"td", "th"}, "tr": {"tr", "td", "th"}, "option": {"option"},
}
_TEMPLATE_OPENERS = re.compile(r"\{(?=[{%#])")


@dataclass(frozen=True)
class SanitizedBody:
    """What q2c stores and renders of one CMS body.

    Attributes:
        body: The cleaned bytes (UTF-8 for text): hashed, stored and rendered.
        suffix: File suffix for the stored body: `.html` (a block), `.txt` (a legal text),
            or the media type's for an asset or document.
        media_type: The stored body's media type.
        sha256: SHA-256 of `body`, the pin documents record.
        raw_sha256: SHA-256 of the body as the CMS returned it, to see a change upstream.
        changed: Whether cleaning changed anything beyond the braces and the text form.
    """

    body: bytes
    suffix: str
    media_type: str
    sha256: str
    raw_sha256: str
    changed: bool = False


def _attribute(tag: str, name: str, value: str) -> str | None:
    """Keep an attribute only with a value that cannot fetch, run or mislead."""
    text = value.strip()
    if name == "href":
        scheme = text.split(":", 1)[0].lower() if ":" in text else ""
        return text if scheme in LINK_SCHEMES and not _has_control(text) else None
    if name == "dir":
        return text.lower() if text.lower() in ("ltr", "rtl", "auto") else None
    if name == "lang":
        return text if _LANG.match(text) else None
    if name in ("colspan", "rowspan"):
        return text if _SPAN.match(text) else None
    if name == "scope":
        return text.lower() if text.lower() in ("row", "col", "rowgroup", "colgroup") else None
    return text


def _has_control(text: str) -> bool:
    return any(ord(char) < 0x20 or char.isspace() for char in text)


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROPPED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_attribute,
    strip_comments=True,
    link_rel="noopener noreferrer",
    url_schemes=set(LINK_SCHEMES),
    url_relative="deny",
)


class BodyTooComplex(CmsError):
    """A body too large or too deeply nested to clean and render safely."""


class _DepthMeter(HTMLParser):
    """The deepest element nesting of some markup, in one linear pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.deepest = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _VOID_TAGS:
            return
        closes = _SIBLINGS.get(tag)
        while closes and self.open and self.open[-1] in closes:
            self.open.pop()
        self.open.append(tag)
        self.deepest = max(self.deepest, len(self.open))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open[-MAX_DEPTH * 2:]:
            while self.open and self.open.pop() != tag:
                pass


def check_shape(markup: str) -> None:
    """Refuse markup over `MAX_BODY_BYTES` or nested deeper than `MAX_DEPTH`.

    Raises:
        BodyTooComplex: Saying which limit and by how much.
    """
    size = len(markup.encode("utf-8", errors="replace"))
    if size > MAX_BODY_BYTES:
        raise BodyTooComplex(
            f"body is {size} bytes, more than the {MAX_BODY_BYTES} q2c takes; shorten it "
            "or link to a page instead"
        )
    meter = _DepthMeter()
    meter.feed(markup)
    meter.close()
    if meter.deepest > MAX_DEPTH:
        raise BodyTooComplex(
            f"body nests elements {meter.deepest} levels deep, more than the {MAX_DEPTH} "
            "q2c takes; remove the nested markup in the CMS and publish again"
        )


def strip_bidi_controls(text: str) -> str:
    """Text without bidi embedding, override or isolate controls."""
    return _BIDI_CONTROLS.sub("", text)


def clean_html(markup: str) -> str:
    """The allowlisted markup of `markup`, with template syntax still in its text.

    Raises:
        BodyTooComplex: The markup is too large or nested too deeply (`check_shape`).
    """
    check_shape(markup)
    cleaned = _CLEANER.clean(strip_bidi_controls(markup))
    return _BIG_HEADINGS.sub(r"<\1h3>", strip_bidi_controls(cleaned)).strip()


def sanitize_html(markup: str) -> str:
    """Allowlisted HTML in which no `{` is left for a template engine to read."""
    return _escape_braces(clean_html(markup))


def _escape_braces(markup: str) -> str:
    return markup.replace("{", "&#123;").replace("}", "&#125;")


def neutralize_template_syntax(text: str) -> str:
    """Plain text in which `{{`, `{%` and `{#` can no longer open a template tag."""
    return _TEMPLATE_OPENERS.sub("{\u200b", text)


class _TextCollector(HTMLParser):
    """The text of cleaned HTML: paragraphs, list items and rows on their own lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Cleaned HTML as plain text: one line per paragraph, spaces collapsed."""
    collector = _TextCollector()
    collector.feed(clean_html(markup))
    collector.close()
    text = strip_bidi_controls("".join(collector.parts))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def text_to_html(text: str) -> str:
    """A plain-text block as HTML: blank lines separate paragraphs, line breaks stay."""
    text = strip_bidi_controls(text.replace("\r\n", "\n"))
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)]
    rendered = [
        "<p>" + "<br>".join(html.escape(line.strip()) for line in p.splitlines()) + "</p>"
        for p in paragraphs
        if p
    ]
    return _escape_braces("\n".join(rendered))


def _decode(item: CmsItem) -> str:
    try:
        return item.body.decode("utf-8")
    except UnicodeDecodeError:
        # Text that is not UTF-8 keeps what can be read; the change shows as `changed`.
        return item.body.decode("utf-8", errors="replace")


def _base_type(media_type: str) -> str:
    return (media_type or "").split(";", 1)[0].strip().lower()


def sanitize_item(item: CmsItem) -> SanitizedBody:
    """The stored form of an item's body, by kind.

    - blocks: allowlisted HTML (`.html`); a `text/plain` body is escaped into paragraphs.
    - legal: plain text (`.txt`), since documents print legal texts as text: an HTML body
      is cleaned first and its text taken, one line per paragraph.
    - asset, document: the bytes as fetched (they never reach a template).
    """
    raw_sha256 = hashlib.sha256(item.body).hexdigest()
    media_type = _base_type(item.media_type)
    if item.kind in ("blocks", "legal"):
        try:
            return _sanitize_text(item, media_type, raw_sha256)
        except BodyTooComplex as exc:
            raise BodyTooComplex(
                f"{item.source} item {item.external_id} ({item.locale}) version "
                f"{item.source_version} ({item.content_id}): {exc}"
            ) from None
    suffix = mimetypes.guess_extension(media_type) or ".bin"
    return SanitizedBody(item.body, suffix, media_type or "application/octet-stream",
                         raw_sha256, raw_sha256, False)


def _sanitize_text(item: CmsItem, media_type: str, raw_sha256: str) -> SanitizedBody:
    """A block's or legal text's stored form (see `sanitize_item`)."""
    if len(item.body) > MAX_BODY_BYTES:
        raise BodyTooComplex(f"body is {len(item.body)} bytes, more than the "
                             f"{MAX_BODY_BYTES} q2c takes; shorten it or link to a page")
    text = _decode(item)
    is_html = media_type not in TEXT_TYPES  # HTML unless it says it is plain text
    if item.kind == "blocks":
        cleaned = sanitize_html(text) if is_html else text_to_html(text)
        changed = is_html and clean_html(text) != text.strip()
        return _body(cleaned, ".html", "text/html", raw_sha256, changed)
    plain = (html_to_text(text) if is_html
             else strip_bidi_controls(text.replace("\r\n", "\n")).strip())
    safe = neutralize_template_syntax(plain)
    changed = (is_html and clean_html(text) != text.strip()) or safe != plain
    return _body(safe, ".txt", "text/plain", raw_sha256, changed)


def _body(text: str, suffix: str, media_type: str, raw_sha256: str, changed: bool
          ) -> SanitizedBody:
    data = (text.strip() + "\n").encode("utf-8")
    return SanitizedBody(data, suffix, media_type, hashlib.sha256(data).hexdigest(),
                         raw_sha256, changed)
