"""Render an invoice document to HTML with governed content, and the HTML to PDF.

`render_html()` fills the approved invoice template with one `InvoiceDocument` and says
which content versions it used; `render_pdf()` lays the HTML out with WeasyPrint. The PDF
renderer fetches nothing but files inside the content store (the theme's stylesheet, logo
and fonts): an `http://` URL or a path outside `content/` stops the rendering with an
error instead of leaking a request or a local file into a customer's document.

The PDF is deterministic: its creation and modification dates are the invoice's issue date
and its file identifier is derived from the HTML, so the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import mimetypes
import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from q2c.content.registry import (
    DEFAULT_CONTENT_DIR,
    ContentEntry,
    ContentError,
    ContentRegistry,
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


class DocumentRenderError(RuntimeError):
    """WeasyPrint could not turn an invoice's HTML into a PDF."""


@dataclass(frozen=True)
class UsedContent:
    """The exact content versions one rendering used; recorded on every document."""

    template: ContentEntry
    theme: ContentEntry
    texts: ContentEntry

    @property
    def is_draft(self) -> bool:
        return any(entry.status == "draft" for entry in (self.template, self.theme, self.texts))

    def versions(self) -> dict[str, dict[str, str]]:
        """Role to id and version, as plain strings (for hashes and the manifest)."""
        return {
            role: {"id": entry.id, "version": str(entry.version)}
            for role, entry in (
                ("template", self.template),
                ("theme", self.theme),
                ("texts", self.texts),
            )
        }


def resolve_content(
    content: ContentRegistry, on: dt.date | None = None, preview: bool = False
) -> UsedContent:
    """Pick the invoice template, theme and labels in force on `on` (today by default).

    With `preview`, the newest drafts win where they exist; such a rendering carries a
    watermark and is never sent.
    """
    get = content.get_preview if preview else content.get
    return UsedContent(
        template=get(TEMPLATE_ID, on=on), theme=get(THEME_ID, on=on), texts=get(TEXTS_ID, on=on)
    )


def render_html(
    doc: InvoiceDocument,
    content: ContentRegistry,
    used: UsedContent | None = None,
    on: dt.date | None = None,
    preview: bool = False,
) -> tuple[str, UsedContent]:
    """Fill the invoice template with one document.

    Args:
        doc: The invoice to print.
        content: The content registry; its approved versions are used.
        used: Versions resolved beforehand (a batch resolves once, so every invoice of the
            batch and its input hash agree); resolved from `content` when omitted.
        on: Date the content must be in effect on, when `used` is omitted.
        preview: Use draft content where it exists and watermark the page.

    Returns:
        The HTML and the content versions it used.
    """
    if used is None:
        used = resolve_content(content, on=on, preview=preview)
    else:
        for entry in (used.template, used.theme, used.texts):
            content.verify(entry)
    labels, _ = content.labels(doc.language, entry=used.texts)
    html = content.template(used.template).render(
        doc=doc,
        labels=labels,
        locale=doc.locale,
        theme=_theme_context(content, used.theme),
        preview=preview or used.is_draft,
    )
    return html, used


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


class ContentUrlFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves files inside the content store, nothing else.

    Every other URL (http, https, data, ftp, a file outside the store, a symlink leading
    out of it) raises `ContentFetchRefusedError`, and the rendering stops.
    """

    def __init__(self, root: Path):
        super().__init__(fail_on_errors=True)
        self.root = Path(root).resolve()

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
        path = self.resolve(url)
        mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), body=path.read_bytes(), headers={"Content-Type": mime_type}
        )

    def _refuse(self, url: str, why: str) -> ContentFetchRefusedError:
        return ContentFetchRefusedError(
            f"refused to fetch `{url}`: {why}. Invoice documents may only use files inside "
            f"the content store {self.root} (theme stylesheet, fonts, logo); put the file "
            "there, register it in a content version and link it by a relative path"
        )


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

    def render(self, html: str, pdf_variant: str | None = None) -> bytes:
        """Lay out the HTML and return the PDF bytes.

        `pdf_variant` is WeasyPrint's, e.g. `pdf/a-3b` for a Factur-X invoice.

        Raises:
            ContentFetchRefusedError: When the HTML or its stylesheet links a resource
                outside the content store.
            DocumentRenderError: When WeasyPrint fails for another reason.
        """
        identifier = hashlib.md5(html.encode("utf-8"), usedforsecurity=False).hexdigest()
        stylesheets: list[CSS] = []

        def take_stylesheet(match: re.Match) -> str:
            stylesheets.append(self.stylesheet(unescape(match["href"])))
            return ""

        html = _STYLESHEET_LINK.sub(take_stylesheet, html)
        try:
            document = HTML(string=html, base_url=self.base_url, url_fetcher=self.fetcher)
            return document.write_pdf(
                stylesheets=stylesheets,
                font_config=self.font_config,
                cache=self.image_cache,
                pdf_identifier=identifier.encode("ascii"),
                pdf_variant=pdf_variant,
            )
        except FatalURLFetchingError as exc:
            cause = exc.__cause__
            if isinstance(cause, ContentError):
                raise type(cause)(str(cause)) from None
            raise DocumentRenderError(f"a resource of the document failed: {cause}") from cause
        except (OSError, ValueError) as exc:
            raise DocumentRenderError(f"WeasyPrint could not render the document: {exc}") from exc

    def stylesheet(self, href: str) -> CSS:
        """The parsed stylesheet at `href` (relative to the content root), parsed once."""
        path = self.fetcher.resolve(urljoin(self.base_url, href))
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


def render_pdf(html: str, content_root: Path | None = None) -> bytes:
    """Render invoice HTML to PDF bytes, fetching only from the content store.

    Title and language of the PDF come from the HTML's `<title>` and `lang`; its creation
    and modification dates from the `dcterms.created` and `dcterms.modified` meta elements,
    which the invoice template sets to the issue date.
    """
    return pdf_renderer(content_root).render(html)
