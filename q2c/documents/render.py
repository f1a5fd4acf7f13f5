"""Render an invoice document to HTML with governed content, and the HTML to PDF.

`render_html()` fills the approved invoice template with one `InvoiceDocument` and says
which content versions it used; `render_pdf()` lays the HTML out with WeasyPrint. The PDF
renderer fetches nothing but files inside the content store (the theme's stylesheet, logo
and fonts), the document's own attachments (`q2c-attachment:` URLs) and `data:` URLs: an
`http://` URL, a redirect or a path outside `content/` stops the rendering with a logged
error instead of leaking a request or a local file into a customer's document.

The PDF is deterministic: its creation and modification dates are the invoice's issue date
and its file identifier is derived from the HTML, so the same inputs give the same bytes.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import logging
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit
from urllib.request import DataHandler, Request

from markupsafe import Markup, escape
from weasyprint import CSS, HTML, Attachment
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from q2c.content.registry import (
    DEFAULT_CONTENT_DIR,
    ContentEntry,
    ContentError,
    ContentRegistry,
    autoescaped,
)
from q2c.content.selection import (
    ContentSet,
    Selection,
    content_in_force,
    select_content,
    selection_of,
)
from q2c.documents.model import InvoiceDocument

log = logging.getLogger(__name__)

TEMPLATE_ID = "invoice"
THEME_ID = "default"
TEXTS_ID = "invoice_labels"

# The stylesheet links the invoice template writes; the renderer parses their targets once.
_STYLESHEET_LINK = re.compile(r'<link rel="stylesheet" href="(?P<href>[^"]+)">')
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., %]+\))$")


class ContentFetchRefusedError(ContentError):
    """The PDF renderer was asked for a resource outside the content store."""


class InvalidAttachmentError(ValueError):
    """An attachment handed to the PDF renderer has no usable name, bytes or type."""


class DocumentRenderError(RuntimeError):
    """WeasyPrint could not turn an invoice's HTML into a PDF."""


# What a rendering is given: one document's `Selection`, or a batch's `ContentSet` from
# which each document's selection is made (`q2c.content.selection`).
UsedContent = Selection | ContentSet

# Printed on every page of a preview whose template does not print its own watermark.
_WATERMARK_STYLE = (
    "position: fixed; top: 118mm; left: 0; width: 100%; text-align: center; "
    "font-size: 38pt; font-weight: bold; white-space: nowrap; "
    "color: rgba(200, 30, 30, 0.16); transform: rotate(-30deg);"
)
_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def resolve_content(
    content: ContentRegistry, on: dt.date | None = None, preview: bool = False
) -> ContentSet:
    """The content in force on `on` (today by default), for a batch to select from.

    Each document's template, theme, labels, blocks and legal texts are chosen from it by
    `ContentSet.select()` (or `render_html()`, which does that). With `preview`, drafts
    win where they exist; such a rendering carries a watermark and is never sent.
    """
    return content_in_force(content, on=on, preview=preview)


def selection_for(
    doc: InvoiceDocument,
    content: ContentRegistry,
    used: UsedContent | None = None,
    on: dt.date | None = None,
    preview: bool = False,
) -> Selection:
    """The selection of one document: `used` itself, made from `used`, or from `content`.

    Raises:
        ValueError: When `used` is a selection made for another invoice.
    """
    if used is None:
        return select_content(content, doc, on=on, preview=preview)
    selection = selection_of(doc, used)
    for entry in selection.entries():
        content.verify(entry)
    return selection


def render_html(
    doc: InvoiceDocument,
    content: ContentRegistry,
    used: UsedContent | None = None,
    on: dt.date | None = None,
    preview: bool = False,
    *,
    extra: Mapping[str, object] | None = None,
) -> tuple[str, Selection]:
    """Fill the selected template with one document.

    The template gets `doc`, `labels`, `locale`, `theme`, `preview`, `blocks` (each
    `{id, version, placement, html, text}`, `html` ready to print), `legal_texts` (each
    `{id, version, case, language, text}`) and `direction` (`rtl` or `ltr`), plus `extra`
    (for example the invoice a credit note corrects), which cannot override those.

    Args:
        doc: The invoice to print.
        content: The content registry; its approved versions are used.
        used: A batch's `ContentSet` (so every invoice of the batch and its input hash
            agree on what was in force) or this document's `Selection`; selected from
            `content` when omitted.
        on: Date the content must be in effect on, when `used` is omitted.
        preview: Use draft content where it exists and watermark every page.
        extra: More variables for the template.

    Returns:
        The HTML and the selection it used (versions and why).
    """
    selection = selection_for(doc, content, used, on=on, preview=preview)
    watermark = preview or selection.is_preview
    for fallback in selection.fallbacks:  # expected chains; counted on the documents asset
        log.info("invoice %s: content fallback %s", doc.invoice_number, fallback)
    labels = selection_labels(content, selection)
    context = {
        **(extra or {}),
        "doc": doc,
        "labels": labels,
        "locale": doc.locale,
        "theme": _theme_context(content, selection.theme),
        "preview": watermark,
        "blocks": message_blocks(content, selection, doc, labels),
        "legal_texts": legal_texts(content, selection),
        "direction": selection.direction,
    }
    html = content.template(selection.template).render(context)
    if watermark:
        html = ensure_watermark(html, labels.get("draft_watermark") or "DRAFT")
    return html, selection


def selection_labels(content: ContentRegistry, selection: Selection) -> dict[str, str]:
    """The label texts of a selection, merged in the template's order, each completed
    along the language chain (`de-AT -> de -> en`)."""
    labels: dict[str, str] = {}
    for choice in selection.of_role("labels"):
        found, _ = content.labels(selection.audience.language, entry=choice.entry)
        labels.update(found)
    return labels


def message_blocks(
    content: ContentRegistry, selection: Selection, doc: InvoiceDocument, labels: Mapping
) -> list[dict]:
    """The selected message blocks, rendered in the sandbox for this document.

    An HTML block was autoescaped as it rendered; a plain-text block was not, so its output
    is escaped here (line breaks kept as `<br>`) before it is printed as HTML.
    """
    blocks = []
    for choice in selection.blocks:
        rendered = content.template(choice.entry, choice.file).render(
            doc=doc, labels=labels, locale=doc.locale, direction=selection.direction
        ).strip()
        if autoescaped(choice.entry.file_name(choice.file)):
            markup = Markup(rendered)
            text = markup.striptags()
        else:
            markup = Markup("<br>\n").join(escape(line) for line in rendered.splitlines())
            text = rendered
        blocks.append(
            {
                "id": choice.entry.id,
                "version": choice.entry.version,
                "placement": choice.entry.placement,
                "language": choice.language,
                "html": markup,
                "text": text,
            }
        )
    return blocks


def legal_texts(content: ContentRegistry, selection: Selection) -> list[dict]:
    """The selected legal texts, one per legal case of the document, in print order."""
    return [
        {
            "id": choice.entry.id,
            "version": choice.entry.version,
            "case": choice.entry.case,
            "language": choice.language,
            "text": content.read_text(choice.entry, choice.file).strip(),
        }
        for choice in selection.legal
    ]


def ensure_watermark(html: str, text: str) -> str:
    """Put a DRAFT watermark on every page, unless the template printed its own.

    A preview is never valid, whatever its template does: a draft template that forgets
    the watermark still gets one (fixed position repeats it on every page).
    """
    if 'class="watermark"' in html:
        return html
    mark = f'<div class="watermark" style="{_WATERMARK_STYLE}">{escape(text)}</div>'
    match = _BODY_TAG.search(html)
    if match is None:
        return mark + html
    return html[: match.end()] + mark + html[match.end() :]


def _theme_context(content: ContentRegistry, theme: ContentEntry) -> dict:
    """Colors (checked, since they go into a style element) and file paths of a theme."""
    settings = content.read_yaml(theme, "theme.yaml")
    colors = {str(name): str(value) for name, value in (settings.get("colors") or {}).items()}
    for name, value in colors.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or not _COLOR.match(value):
            raise ContentError(
                f"{theme.file_path('theme.yaml')}: color `{name}: {value}` is not a CSS color "
                "(use #rrggbb); fix it in a new version of the theme"
            )
    return {
        "colors": colors,
        "stylesheet": theme.file_name(settings.get("stylesheet") or theme.main),
        "logo": theme.file_name(settings.get("logo") or "logo.svg"),
    }


ATTACHMENT_SCHEME = "q2c-attachment"

# Title and creation date the invoice template writes, to name a document in logs and to
# date its embedded files.
_TITLE = re.compile(r"<title>(?P<title>[^<]*)</title>")
_CREATED = re.compile(r'<meta name="dcterms.created" content="(?P<date>\d{4}-\d{2}-\d{2})')
# A file without a dated document is dated here, so its bytes still never depend on the clock.
_UNDATED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


@dataclass(frozen=True)
class DocumentAttachment:
    """A file that travels inside one PDF (a contract, a proof of delivery)."""

    name: str
    data: bytes
    mime_type: str
    description: str = ""

    @property
    def url(self) -> str:
        """How the document's HTML links it: `q2c-attachment:<name>`."""
        return f"{ATTACHMENT_SCHEME}:{quote(self.name)}"


def document_attachments(
    attachments: Sequence[tuple[str, bytes, str, str | None]], document: str = "document"
) -> dict[str, DocumentAttachment]:
    """Check `(file name, bytes, mime type, description)` tuples; file name to attachment.

    Raises:
        InvalidAttachmentError: Naming the document, the attachment and what is wrong.
    """
    files: dict[str, DocumentAttachment] = {}
    for number, item in enumerate(attachments, start=1):
        where = f"{document}: attachment {number}"
        try:
            name, data, mime_type, description = item
        except (TypeError, ValueError) as exc:
            raise InvalidAttachmentError(
                f"{where} must be (file name, bytes, mime type, description)"
            ) from exc
        name = str(name or "")
        if name in ("", ".", "..") or not name.isprintable() or set(name) & {"/", "\\"}:
            raise InvalidAttachmentError(
                f"{where}: file name `{name}` must be a plain file name without a folder"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidAttachmentError(f"{where} (`{name}`): the content must be bytes")
        if not _MIME_TYPE.match(str(mime_type or "").lower()):
            raise InvalidAttachmentError(
                f"{where} (`{name}`): mime type `{mime_type}` is not like application/pdf"
            )
        if name in files:
            raise InvalidAttachmentError(f"{where}: file name `{name}` is attached twice")
        files[name] = DocumentAttachment(
            name, bytes(data), str(mime_type).lower(), str(description or "")
        )
    return files


class ContentUrlFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves the content store and the document's own files.

    It serves files inside the content store, the attachments of the document being
    rendered (`q2c-attachment:<file name>`) and `data:` URLs. Every other URL (http,
    https, ftp, a file outside the store, a symlink leading out of it, an unknown
    attachment) is logged and raises `ContentFetchRefusedError`, and the rendering stops:
    no connection is ever opened, so no redirect can be followed either.
    """

    def __init__(
        self,
        root: Path,
        attachments: Mapping[str, DocumentAttachment] | None = None,
        document: str | None = None,
    ):
        super().__init__(fail_on_errors=True)
        self.root = Path(root).resolve()
        self.attachments = dict(attachments or {})
        self.document = document
        # Every refusal, also those WeasyPrint catches itself (an SVG drawing its images).
        self.refused: list[ContentFetchRefusedError] = []

    def for_document(
        self, attachments: Mapping[str, DocumentAttachment], document: str
    ) -> ContentUrlFetcher:
        """A fetcher for one document: its attachments, its name in logs, its refusals.

        A shallow copy, so a rendering does not pay for setting up another fetcher.
        """
        fetcher = copy.copy(self)
        fetcher.attachments = dict(attachments)
        fetcher.document = document
        fetcher.refused = []
        return fetcher

    def resolve(self, url: str) -> Path:
        """The file inside the content store that `url` names, or a refusal."""
        parts = urlsplit(url)
        if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
            raise self._refuse(url, f"the {parts.scheme or 'remote'} scheme is not allowed")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            path = self.root / path
        path = path.resolve()
        if not path.is_relative_to(self.root):
            raise self._refuse(url, "the file is outside the content store")
        if not path.is_file():
            raise self._refuse(url, "no such file in the content store")
        return path

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data":
            return self._data(url)
        if scheme == ATTACHMENT_SCHEME:
            return self._attachment(url)
        path = self.resolve(url)
        mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), body=path.read_bytes(), headers={"Content-Type": mime_type}
        )

    def _data(self, url: str) -> URLFetcherResponse:
        """A `data:` URL carries its bytes itself; decoding it reaches nothing outside."""
        try:
            response = DataHandler().data_open(Request(url))
        except ValueError as exc:
            raise self._refuse(url, f"the data URL is malformed ({exc})") from exc
        return URLFetcherResponse(
            url, body=response.read(), headers={"Content-Type": response.headers["Content-Type"]}
        )

    def _attachment(self, url: str) -> URLFetcherResponse:
        name = unquote(url.split(":", 1)[1])
        attachment = self.attachments.get(name)
        if attachment is None:
            raise self._refuse(url, f"the document has no attachment named `{name}`")
        return URLFetcherResponse(
            url, body=attachment.data, headers={"Content-Type": attachment.mime_type}
        )

    def _refuse(self, url: str, why: str) -> ContentFetchRefusedError:
        shown = url if len(url) <= 200 else url[:200] + "…"
        log.warning("%s: refused to fetch `%s`: %s", self.document or "document", shown, why)
        error = ContentFetchRefusedError(
            f"refused to fetch `{shown}`: {why}. Invoice documents may only use files inside "
            f"the content store {self.root} (theme stylesheet, fonts, logo), their own "
            "attachments and data: URLs; put the file in the content store, register it in "
            "a content version and link it by a relative path"
        )
        self.refused.append(error)
        return error


class PdfRenderer:
    """WeasyPrint with state kept warm across documents: stylesheets, fonts, images.

    Parsing the theme stylesheet costs about as much as laying out a one-page invoice, so
    the renderer parses each linked stylesheet of the content store once and hands the
    parsed copy to WeasyPrint for every document. A stylesheet file that changes on disk
    is parsed again (the cache is keyed by its sha256).
    """

    def __init__(self, content_root: Path | None = None):
        self.root = Path(content_root or DEFAULT_CONTENT_DIR).resolve()
        self.base_url = self.root.as_uri() + "/"
        self.fetcher = ContentUrlFetcher(self.root)
        self.font_config = FontConfiguration()
        self.image_cache: dict = {}
        self._stylesheets: dict[tuple[Path, str], CSS] = {}

    def render(
        self,
        html: str,
        pdf_variant: str | None = None,
        attachments: Sequence[tuple[str, bytes, str, str | None]] = (),
    ) -> bytes:
        """Lay out the HTML and return the PDF bytes.

        Args:
            html: The document; it may link content store files by relative path, its
                attachments as `q2c-attachment:<file name>` and `data:` URLs.
            pdf_variant: WeasyPrint's, e.g. `pdf/a-3b` for a Factur-X invoice.
            attachments: `(file name, bytes, mime type, description)` of each file to embed
                in the PDF (relationship Supplement), dated with the document.

        Raises:
            ContentFetchRefusedError: When the HTML or its stylesheet links any other
                resource (logged with the document's title).
            InvalidAttachmentError: When an attachment has no usable name, bytes or type.
            DocumentRenderError: When WeasyPrint fails for another reason.
        """
        title = _TITLE.search(html)
        name = f"document {unescape(title['title'])}" if title else "document"
        files = document_attachments(attachments, name)
        fetcher = self.fetcher.for_document(files, name)
        digest = hashlib.md5(html.encode("utf-8"), usedforsecurity=False)
        for attachment in files.values():
            digest.update(attachment.name.encode("utf-8") + attachment.data)
        stylesheets: list[CSS] = []

        def take_stylesheet(match: re.Match) -> str:
            stylesheets.append(self.stylesheet(unescape(match["href"]), fetcher))
            return ""

        html = _STYLESHEET_LINK.sub(take_stylesheet, html)
        created = _CREATED.search(html)
        when = (
            dt.datetime.fromisoformat(created["date"]).replace(tzinfo=dt.UTC)
            if created
            else _UNDATED
        )
        try:
            document = HTML(string=html, base_url=self.base_url, url_fetcher=fetcher)
            pdf = document.write_pdf(
                stylesheets=stylesheets,
                font_config=self.font_config,
                # A document's attachments must not reach another document's images.
                cache=dict(self.image_cache) if files else self.image_cache,
                pdf_identifier=digest.hexdigest().encode("ascii"),
                pdf_variant=pdf_variant,
                attachments=[
                    Attachment(
                        url=attachment.url,
                        url_fetcher=fetcher,
                        name=attachment.name,
                        description=attachment.description,
                        created=when,
                        modified=when,
                        relationship="Supplement",
                    )
                    for attachment in files.values()
                ],
            )
        except FatalURLFetchingError as exc:
            cause = exc.__cause__
            if isinstance(cause, ContentError):
                raise type(cause)(str(cause)) from None
            raise DocumentRenderError(f"a resource of the document failed: {cause}") from cause
        except (OSError, ValueError) as exc:
            raise DocumentRenderError(f"WeasyPrint could not render the document: {exc}") from exc
        if fetcher.refused:
            raise type(fetcher.refused[0])(str(fetcher.refused[0]))
        return pdf

    def stylesheet(self, href: str, fetcher: ContentUrlFetcher | None = None) -> CSS:
        """The parsed stylesheet at `href` (relative to the content root), parsed once.

        `fetcher` is the document's, so a refusal is logged with the document's name.
        """
        path = (fetcher or self.fetcher).resolve(urljoin(self.base_url, href))
        data = path.read_bytes()
        key = (path, hashlib.sha256(data).hexdigest())
        if key not in self._stylesheets:
            self._stylesheets[key] = CSS(
                string=data.decode("utf-8"),
                base_url=path.as_uri(),
                url_fetcher=self.fetcher,
                font_config=self.font_config,
            )
        return self._stylesheets[key]


_renderers: dict[Path, PdfRenderer] = {}


def pdf_renderer(content_root: Path | None = None) -> PdfRenderer:
    """The process's renderer for a content folder, created on first use and kept warm."""
    root = Path(content_root or DEFAULT_CONTENT_DIR).resolve()
    if root not in _renderers:
        _renderers[root] = PdfRenderer(root)
    return _renderers[root]


def render_pdf(
    html: str,
    content_root: Path | None = None,
    attachments: Sequence[tuple[str, bytes, str, str | None]] = (),
) -> bytes:
    """Render invoice HTML to PDF bytes, fetching only from the content store.

    Title and language of the PDF come from the HTML's `<title>` and `lang`; its creation
    and modification dates from the `dcterms.created` and `dcterms.modified` meta elements,
    which the invoice template sets to the issue date. `attachments` are embedded as for
    `PdfRenderer.render()`.
    """
    return pdf_renderer(content_root).render(html, attachments=attachments)
