"""Portal pages: Jinja2 templates from `content/portal/`, in the customer's language, with
the governed theme and legal texts of the documents.

- Templates are `content/portal/templates/*.html`, autoescaped (customer and CRM text is
  always escaped), with the money and date filters of the documents (Babel, the account's
  locale, the currency's minor units).
- Texts are `content/portal/texts/<lang>.yaml` merged with `<module>.<lang>.yaml` files of
  the route modules, tried along the language chain `de-AT -> de -> en`; a key missing in
  every language shows as `[key]`, so a gap is visible instead of blank.
- The theme is the governed one the documents use (`q2c.content.selection`, channel
  `portal`, the account's segment, country and language): its colors become the custom
  properties of the stylesheet served at `/assets/<theme>/<version>/portal.css`, and its
  logo is served beside it. The CSP allows no inline style, so nothing else is needed.
- Legal texts are the ones the invoice's PDF prints (`legal_texts`), chosen the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from q2c.content.formatting import date_filter, money_filter, number_filter
from q2c.content.registry import ContentEntry, ContentRegistry, language_chain, load_registry
from q2c.content.selection import ContentSet, content_in_force
from q2c.settings import Settings

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "de")
DEFAULT_LOCALES = {"en": "en_GB", "de": "de_DE"}
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., %]+\))$")
_COLOR_NAME = re.compile(r"[a-z][a-z0-9-]*")
_VERSION = re.compile(r"[0-9]{1,6}")


class Texts(dict):
    """Label texts of one language; a missing key shows as `[key]`."""

    def __missing__(self, key: str) -> str:
        return f"[{key}]"


@dataclass(frozen=True)
class Theme:
    """The governed theme a page is drawn with."""

    id: str
    version: int
    name: str

    @property
    def stylesheet_url(self) -> str:
        return f"/assets/{self.id}/{self.version}/portal.css"

    @property
    def logo_url(self) -> str:
        return f"/assets/{self.id}/{self.version}/logo.svg"


class Pages:
    """Renders portal pages; one per app (kept in `app.state.portal.pages`)."""

    def __init__(self, settings: Settings, portal_dir: Path | None = None,
                 registry: ContentRegistry | None = None) -> None:
        self.settings = settings
        self.portal_dir = Path(portal_dir or Path(settings.content_dir) / "portal")
        self.registry = registry or load_registry(settings.content_dir)
        self.env = Environment(
            loader=FileSystemLoader(str(self.portal_dir / "templates")),
            autoescape=select_autoescape(("html",), default_for_string=True),
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters.update(money=money_filter, date=date_filter, number=number_filter)
        self.nav: list[tuple[str, str]] = []
        # Templates route modules add to the invoice page's actions (pay, dispute).
        self.invoice_actions: list[str] = []

    def render(self, request: Request, template: str, status_code: int,
               ctx: Mapping[str, Any]) -> Response:
        from q2c.portal import security

        customer = getattr(request.state, "customer", None)
        language = self.language_of(request)
        account = ctx.get("account")
        locale = getattr(account, "locale", None) or DEFAULT_LOCALES.get(language, "en_GB")
        values = {
            "request": request,
            "t": self.texts(language),
            "lang": language,
            "locale": locale,
            "theme": self.theme_for(language, account),
            "csrf_token": security.csrf_token(request),
            "customer": customer,
            "seller": self.settings.seller,
            "nav": self.nav if customer is not None and customer.is_account_scope else [],
            "path": request.url.path,
            "legal_texts": [],
            "invoice_actions": self.invoice_actions,
            **ctx,
        }
        html = self.env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code)

    def language_of(self, request: Request) -> str:
        """The customer's language, else the browser's (Accept-Language), else English."""
        customer = getattr(request.state, "customer", None)
        if customer is not None:
            return _supported(customer.language)
        header = request.headers.get("accept-language", "")
        ranked = []
        for position, part in enumerate(header.split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            ranked.append((-quality, position, tag.strip()))
        for _, _, tag in sorted(ranked):
            base = tag.lower().split("-")[0]
            if base in LANGUAGES:
                return base
        return "en"

    def texts(self, language: str) -> Texts:
        return _texts(str(self.portal_dir / "texts"), _supported(language))

    def theme_for(self, language: str, account: Any = None) -> Theme:
        entry = self._selection(_reader(self.settings, language, account, None)).theme
        theme = self.registry.read_yaml(entry, "theme.yaml")
        return Theme(entry.id, entry.version, str(theme.get("name") or entry.id))

    def legal_texts(self, request: Request, invoice: Any, account: Any = None) -> list[dict]:
        """The legal texts the invoice's PDF prints, in the customer's language."""
        language = self.language_of(request)
        selection = self._selection(_reader(self.settings, language, account, invoice))
        return [
            {"id": choice.entry.id, "version": choice.entry.version,
             "case": choice.entry.case, "language": choice.language,
             "text": self.registry.read_text(choice.entry, choice.file).strip()}
            for choice in selection.legal
        ]

    def asset(self, theme_id: str, version: str, name: str) -> tuple[bytes, str] | None:
        """The portal stylesheet with a theme's colors, or the theme's logo; None else."""
        entry = self._theme_entry(theme_id, version)
        if entry is None:
            return None
        if name == "portal.css":
            colors = self.registry.read_yaml(entry, "theme.yaml").get("colors") or {}
            props = "".join(
                f"  --{key}: {value};\n" for key, value in sorted(colors.items())
                if _COLOR_NAME.fullmatch(str(key)) and _COLOR.match(str(value)))
            base = (self.portal_dir / "static" / "portal.css").read_text(encoding="utf-8")
            return f":root {{\n{props}}}\n{base}".encode(), "text/css; charset=utf-8"
        if name == "logo.svg":
            logo = self.registry.read_yaml(entry, "theme.yaml").get("logo") or "logo.svg"
            self.registry.verify(entry)
            return entry.file_path(str(logo)).read_bytes(), "image/svg+xml"
        return None

    def _theme_entry(self, theme_id: str, version: str) -> ContentEntry | None:
        """The theme of the URL; None (404) for a version that is not a few ASCII digits
        (`str.isdigit` takes `²`, which `int` does not)."""
        if not _VERSION.fullmatch(version):
            return None
        for entry in self._content().entries:
            if entry.kind == "theme" and entry.id == theme_id and entry.version == int(version):
                return entry
        return None

    def _selection(self, reader: Any):
        return self._content().select(reader, channel="portal", document="invoice")

    def _content(self) -> ContentSet:
        today = dt.datetime.now(dt.UTC).date()
        cached = getattr(self, "_cached_content", None)
        if cached is None or cached.on != today:
            cached = content_in_force(self.registry, on=today, channel="portal")
            self._cached_content = cached
        return cached


def _supported(language: str | None) -> str:
    for tag in language_chain(language):
        if tag in LANGUAGES:
            return tag
    return "en"


@lru_cache(maxsize=16)
def _texts(folder: str, language: str) -> Texts:
    """Every text file of the folder for the language chain, English first."""
    merged = Texts()
    for tag in reversed(language_chain(language)):
        for path in sorted(Path(folder).glob(f"*{tag}.yaml")):
            stem = path.name[: -len(".yaml")]
            if stem != tag and not stem.endswith(f".{tag}"):
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path} must be a mapping of text keys to texts")
            merged.update({str(key): str(value) for key, value in data.items()})
    return merged


def _reader(settings: Settings, language: str, account: Any, invoice: Any) -> Any:
    """The reader content selection sees: the account's country and segment, the invoice's
    amounts (for its legal cases), and the seller's country."""
    country = getattr(account, "country_code", None)
    return SimpleNamespace(
        invoice_id=getattr(invoice, "invoice_id", None),
        language=language,
        segment=getattr(account, "segment", None),
        buyer=SimpleNamespace(country=country, vat_id=getattr(account, "vat_id", None)),
        seller=SimpleNamespace(country=settings.seller.country),
        tax_total=getattr(invoice, "tax", Decimal(0)) if invoice is not None else Decimal(0),
        total=getattr(invoice, "total", Decimal(0)) if invoice is not None else Decimal(0),
    )
