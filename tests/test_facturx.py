"""Factur-X: the invoice PDF as PDF/A-3 with its CII XML embedded, read back identically."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader
from test_einvoice_build import GERMAN_ADDRESS, GERMAN_ENDPOINT, credit_note, german_b2b

from q2c.content.registry import load_registry
from q2c.documents.render import render_html
from q2c.einvoice.build import build_credit_note, build_einvoice
from q2c.einvoice.cii import read_cii, write_cii
from q2c.einvoice.facturx import FacturXError, read_facturx_xml, render_facturx
from q2c.einvoice.ubl import write_ubl
from q2c.einvoice.validate import validator_for
from q2c.settings import Settings

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"
FX_NS = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "fx": FX_NS,
}


@pytest.fixture(scope="module")
def content():
    return load_registry(CONTENT_DIR)


@pytest.fixture(scope="module")
def invoice(content):
    """The German two-rate invoice: its HTML, its validated CII and the Factur-X PDF."""
    doc = german_b2b()
    einvoice = build_einvoice(
        doc, buyer_endpoint=GERMAN_ENDPOINT, buyer_address=GERMAN_ADDRESS, peppol=False
    )
    cii = write_cii(einvoice)
    report = validator_for(Settings.einvoice_rules_dir).validate_cii(cii)
    assert report.ok, report.summary()
    html, _ = render_html(doc, content)
    return html, cii, render_facturx(html, cii, CONTENT_DIR)


def xmp(reader: PdfReader) -> etree._Element:
    metadata = reader.trailer["/Root"]["/Metadata"].get_object()
    return etree.fromstring(metadata.get_data())


def test_facturx_embeds_the_cii_bytes_as_factur_x_xml(invoice):
    _, cii, pdf = invoice
    reader = PdfReader(io.BytesIO(pdf))

    assert [(a.name, a.content) for a in reader.attachment_list] == [("factur-x.xml", cii)]
    root = reader.trailer["/Root"]
    (filespec,) = [ref.get_object() for ref in root["/AF"]]
    assert filespec["/F"] == filespec["/UF"] == "factur-x.xml"
    assert filespec["/AFRelationship"] == "/Alternative"
    stream = filespec["/EF"]["/F"].get_object()
    assert stream["/Subtype"] == "/text/xml"
    assert stream["/Params"]["/Size"] == len(cii)
    assert "INV-2026-0042" in reader.pages[0].extract_text()


def test_facturx_xmp_names_the_profile_and_pdfa_3(invoice):
    _, _, pdf = invoice
    reader = PdfReader(io.BytesIO(pdf))
    meta = xmp(reader)

    assert meta.findtext(".//pdfaid:part", namespaces=NS) == "3"
    assert meta.findtext(".//pdfaid:conformance", namespaces=NS) == "B"
    assert meta.findtext(".//fx:DocumentType", namespaces=NS) == "INVOICE"
    assert meta.findtext(".//fx:ConformanceLevel", namespaces=NS) == "EN 16931"
    assert meta.findtext(".//fx:DocumentFileName", namespaces=NS) == "factur-x.xml"
    assert meta.findtext(".//fx:Version", namespaces=NS) == "1.0"
    # The fx properties are declared in a PDF/A extension schema, as PDF/A requires.
    assert meta.findtext(".//pdfaSchema:namespaceURI", namespaces=NS) == FX_NS
    assert meta.findtext(".//pdfaSchema:prefix", namespaces=NS) == "fx"
    (intent,) = reader.trailer["/Root"]["/OutputIntents"]
    assert intent.get_object()["/S"] == "/GTS_PDFA1"
    assert "/DestOutputProfile" in intent.get_object()
    assert reader.pdf_header == "%PDF-1.7"


def test_document_information_and_xmp_agree(invoice):
    """PDF/A: every document information entry has an equal XMP property."""
    _, _, pdf = invoice
    reader = PdfReader(io.BytesIO(pdf))
    info, meta = reader.metadata, xmp(reader)

    assert info["/Title"] == meta.findtext(".//dc:title/rdf:Alt/rdf:li", namespaces=NS)
    assert info["/Author"] == meta.findtext(".//dc:creator/rdf:Seq/rdf:li", namespaces=NS)
    assert info["/Subject"] == meta.findtext(".//dc:description/rdf:Alt/rdf:li", namespaces=NS)
    assert info["/Producer"] == meta.findtext(".//pdf:Producer", namespaces=NS)
    assert info["/Creator"] == meta.findtext(".//xmp:CreatorTool", namespaces=NS)
    assert "/Keywords" not in info
    # One date everywhere: the invoice's issue date, 2026-03-02.
    assert info["/CreationDate"] == info["/ModDate"] == "D:20260302000000+00'00'"
    assert meta.findtext(".//xmp:CreateDate", namespaces=NS) == "2026-03-02T00:00:00+00:00"
    assert meta.findtext(".//xmp:ModifyDate", namespaces=NS) == "2026-03-02T00:00:00+00:00"
    (filespec,) = [ref.get_object() for ref in reader.trailer["/Root"]["/AF"]]
    params = filespec["/EF"]["/F"].get_object()["/Params"]
    assert params["/ModDate"] == "D:20260302000000+00'00'"


def test_the_xml_reads_back_identically(invoice):
    _, cii, pdf = invoice

    assert facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True) == ("factur-x.xml", cii)
    assert read_facturx_xml(pdf) == cii
    embedded = read_cii(read_facturx_xml(pdf))
    assert (embedded.number, embedded.totals.payable) == ("INV-2026-0042", Decimal("1388.93"))


def test_same_inputs_give_the_same_facturx_bytes(invoice):
    html, cii, pdf = invoice
    assert render_facturx(html, cii, CONTENT_DIR) == pdf


def test_a_credit_note_is_embedded_too(content):
    doc = credit_note()
    einvoice = build_credit_note(
        doc, preceding_invoice="INV-2026-0042", preceding_issue_date=dt.date(2026, 3, 2),
        buyer_endpoint=GERMAN_ENDPOINT, buyer_address=GERMAN_ADDRESS, peppol=False,
    )
    cii = write_cii(einvoice)
    html, _ = render_html(doc, content)

    pdf = render_facturx(html, cii, CONTENT_DIR)

    assert read_facturx_xml(pdf) == cii
    assert read_cii(cii).type_code == "381"


def test_xml_that_is_not_factur_x_cii_is_refused(invoice):
    html, cii, _ = invoice
    with pytest.raises(FacturXError, match="cannot be embedded as Factur-X en16931"):
        render_facturx(html, write_ubl(read_cii(cii)), CONTENT_DIR)
    broken = cii.replace(b"<rsm:ExchangedDocument>", b"<rsm:ExchangedDocument><ram:Bogus/>")
    assert broken != cii
    with pytest.raises(FacturXError, match="invoice INV-2026-0042: .*XML Schema"):
        render_facturx(html, broken, CONTENT_DIR)
