"""Factur-X: the invoice PDF as PDF/A-3 with its CII XML embedded (EN 16931 profile).

WeasyPrint lays the invoice out as PDF/A-3b (sRGB output intent, XMP, file identifier); the
`factur-x` library then embeds the CII as `factur-x.xml` with AFRelationship Alternative (the
XML carries the same invoice as the page, as Factur-X asks for the EN 16931 profile), lists
it in the catalog's /AF, and writes the XMP with the Factur-X extension schema
(DocumentType INVOICE, ConformanceLevel EN 16931) after checking the XML against the
Factur-X XSD.

The library stamps the current time into the XMP, the document information and the embedded
file, at slightly different moments, and leaves WeasyPrint's producer in the information
dictionary while its XMP names another. PDF/A requires both to say the same, so a last step
sets one date (the invoice's issue date, which the template gives the HTML) and one producer
in all three places. That also makes the output deterministic: the same HTML and XML give
the same bytes, as for the plain invoice PDF.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import io
import logging
import re
from pathlib import Path

import facturx
import weasyprint
from lxml import etree
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, TextStringObject

from q2c.documents.render import pdf_renderer

log = logging.getLogger(__name__)

FACTURX_LEVEL = "en16931"
PDF_VARIANT = "pdf/a-3b"
PRODUCER = (
    f"WeasyPrint {weasyprint.__version__}, factur-x {importlib.metadata.version('factur-x')}"
)

_STYLESHEET_LINK = re.compile(r'<link rel="stylesheet" href="(?P<href>[^"]+)">')
_PDF_DATE = re.compile(r"^D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")
_XMP_NS = "http://ns.adobe.com/xap/1.0/"
_PDF_NS = "http://ns.adobe.com/pdf/1.3/"
_CII_NUMBER = (
    "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}ExchangedDocument/"
    "{urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100}ID"
)


class FacturXError(RuntimeError):
    """The CII could not be embedded (it fails the Factur-X XSD, or the PDF is unusable)."""


def render_facturx(html: str, cii_xml: bytes, content_root: Path | None = None) -> bytes:
    """The Factur-X PDF/A-3 of an invoice: its HTML laid out, its CII XML embedded.

    Args:
        html: The invoice HTML from `render_html()`; its stylesheet, fonts and logo come from
            the content store only, as for the plain PDF.
        cii_xml: The CII D16B invoice (`write_cii()`), validated beforehand; it is embedded
            byte for byte.
        content_root: The content store (the default `content/` folder when None).

    Raises:
        FacturXError: When the XML fails the Factur-X EN 16931 XSD.
        DocumentRenderError, ContentError: As for `render_pdf()`.
    """
    pdf = render_pdfa3(html, content_root)
    try:
        combined = facturx.generate_from_binary(
            pdf,
            cii_xml,
            flavor="factur-x",
            level=FACTURX_LEVEL,
            check_xsd=True,
            afrelationship="alternative",
            xmp_compression=False,
        )
    except Exception as exc:  # the library raises bare Exception for an invalid XML
        number = _invoice_number(cii_xml)
        log.warning("invoice %s: CII not embedded as Factur-X: %s", number, exc)
        raise FacturXError(
            f"invoice {number}: the CII XML cannot be embedded as Factur-X {FACTURX_LEVEL}: "
            f"{exc}; validate it with q2c.einvoice.validate and fix the builder or the data"
        ) from exc
    laid_out = PdfReader(io.BytesIO(pdf))
    return _settle_metadata(combined, _creation_date(laid_out), laid_out.pdf_header)


def render_pdfa3(html: str, content_root: Path | None = None) -> bytes:
    """The invoice HTML as a PDF/A-3b, with the warm renderer's fonts and stylesheets."""
    return pdf_renderer(content_root).render(html, pdf_variant=PDF_VARIANT)


def read_facturx_xml(pdf: bytes) -> bytes:
    """The embedded `factur-x.xml` of a Factur-X PDF, byte for byte.

    Raises:
        FacturXError: When the PDF carries no Factur-X XML that passes the XSD.
    """
    _, xml = facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True)
    if not xml:
        raise FacturXError("the PDF has no valid factur-x.xml attachment")
    return xml


def _invoice_number(cii_xml: bytes) -> str:
    """BT-1 of a CII document, for messages; `?` when the bytes are not such a document."""
    try:
        number = etree.fromstring(cii_xml).findtext(_CII_NUMBER)
    except etree.XMLSyntaxError:
        number = None
    return number or "?"


def _creation_date(laid_out: PdfReader) -> dt.datetime:
    """The creation date WeasyPrint wrote (the template's issue date), else now."""
    info = laid_out.metadata or {}
    match = _PDF_DATE.match(str(info.get("/CreationDate") or ""))
    if not match:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    parts = [int(part) if part else default for part, default in zip(
        match.groups(), (1, 1, 1, 0, 0, 0), strict=True
    )]
    return dt.datetime(*parts, tzinfo=dt.UTC)


def _settle_metadata(pdf: bytes, when: dt.datetime, header: str) -> bytes:
    """One date and one producer in the XMP, the document information and the attachment;
    the PDF version WeasyPrint declared for the variant (1.7 for PDF/A-3)."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.pdf_header = header
    pdf_date = when.strftime("D:%Y%m%d%H%M%S+00'00'")
    xmp_date = when.strftime("%Y-%m-%dT%H:%M:%S+00:00")

    root = writer.root_object
    metadata = root["/Metadata"].get_object()
    xmp = etree.fromstring(metadata.get_data())
    for name in ("CreateDate", "ModifyDate", "MetadataDate"):
        for element in xmp.iter(f"{{{_XMP_NS}}}{name}"):
            element.text = xmp_date
    for element in xmp.iter(f"{{{_PDF_NS}}}Producer"):
        element.text = PRODUCER
    metadata.set_data(_xmp_packet(xmp))  # uncompressed: generated with xmp_compression off

    # The XMP the library writes has no pdf:Keywords; PDF/A wants both or neither.
    info = {
        str(key): str(value)
        for key, value in (writer.metadata or {}).items()
        if key != "/Keywords"
    }
    info |= {"/CreationDate": pdf_date, "/ModDate": pdf_date, "/Producer": PRODUCER}
    writer.metadata = info

    for filespec in root["/AF"].get_object():
        stream = filespec.get_object()["/EF"]["/F"].get_object()
        stream["/Params"][NameObject("/ModDate")] = TextStringObject(pdf_date)

    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _xmp_packet(xmp: etree._Element) -> bytes:
    body = etree.tostring(xmp, encoding="utf-8").decode("utf-8")
    head = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    return f"{head}\n{body}\n<?xpacket end=\"w\"?>".encode()


