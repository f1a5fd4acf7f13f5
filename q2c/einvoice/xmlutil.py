"""XML plumbing shared by the UBL and CII codecs.

Both syntaxes are read the same way: find an element by a prefixed path, take its text
exactly as written (an empty element reads as "", a missing one as None), and turn amounts,
quantities and dates into Decimal and date without passing through float. Writers build
elements only for values that are present, so a field left None never becomes an empty
element that a validator would reject.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from lxml import etree

Element = etree._Element


class EInvoiceSyntaxError(ValueError):
    """The bytes are not the e-invoice syntax the reader expects."""


def parse_xml(xml: bytes) -> Element:
    """Parse untrusted invoice XML: no entity expansion, no network, large base64 allowed."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True
    )
    try:
        return etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise EInvoiceSyntaxError(f"the e-invoice is not well-formed XML: {exc}") from exc


def local_name(element: Element) -> str:
    return etree.QName(element).localname


def format_decimal(value: Decimal) -> str:
    """Plain notation, exponent kept as written: Decimal('1246.00') stays '1246.00'."""
    return format(value, "f")


def parse_decimal(text: str, where: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:
        raise EInvoiceSyntaxError(f"{where}: `{text}` is not a decimal number") from exc


class Reader:
    """Typed look-ups relative to an element, with one namespace map per syntax."""

    def __init__(self, namespaces: dict[str, str]):
        self.ns = namespaces

    def find(self, element: Element | None, path: str) -> Element | None:
        return None if element is None else element.find(path, self.ns)

    def findall(self, element: Element | None, path: str) -> list[Element]:
        return [] if element is None else element.findall(path, self.ns)

    def text(self, element: Element | None, path: str) -> str | None:
        found = self.find(element, path)
        if found is None:
            return None
        return found.text or ""

    def attr(self, element: Element | None, path: str, name: str) -> str | None:
        found = self.find(element, path)
        return None if found is None else found.get(name)

    def decimal(self, element: Element | None, path: str) -> Decimal | None:
        text = self.text(element, path)
        if text is None or not text.strip():
            return None
        return parse_decimal(text, path)

    def iso_date(self, element: Element | None, path: str) -> dt.date | None:
        text = self.text(element, path)
        if text is None or not text.strip():
            return None
        try:
            return dt.date.fromisoformat(text.strip()[:10])
        except ValueError as exc:
            raise EInvoiceSyntaxError(f"{path}: `{text}` is not a date (YYYY-MM-DD)") from exc


def sub(parent: Element, tag: str, text: str | None = None, **attrs: str | None) -> Element:
    """Append a child element; attributes whose value is None are left out."""
    element = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def leaf(
    parent: Element, tag: str, value: str | Decimal | dt.date | None, **attrs: str | None
) -> Element | None:
    """Append a text element for a present value (Decimal in plain notation, ISO dates)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        text = format_decimal(value)
    elif isinstance(value, dt.date):
        text = value.isoformat()
    else:
        text = value
    return sub(parent, tag, text, **attrs)


def serialize(root: Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
