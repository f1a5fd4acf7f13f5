"""Hostile inputs: customer data, templates and links that try to escape the renderer.

Customer data is printed as text; templates run in Jinja's sandbox and load only
registered files; the PDF renderer reads only the content store, the document's own
attachments and `data:` URLs. A real HTTP server on 127.0.0.1 records every request the
renderer might make: there must be none.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import logging
import re
import shutil
import subprocess
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from jinja2 import TemplateNotFound
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from PIL import Image
from pypdf import PdfReader
from weasyprint import HTML

from q2c.content.registry import file_sha256, load_registry
from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.documents.render import (
    ContentFetchRefusedError,
    InvalidAttachmentError,
    PdfRenderer,
    render_html,
    render_pdf,
)
from q2c.money import Money
from q2c.settings import Seller

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"


def png(width: int, height: int, color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


PIXEL = png(1, 1, "red")


class _RecordingHandler(BaseHTTPRequestHandler):
    """Answers everything (a redirect for /redirect) and records the request."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.server.hits.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        body = PIXEL if self.path.endswith(".png") else b"p { color: red }"
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if body is PIXEL else "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="module")
def _server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def loopback(_server):
    """An HTTP server on 127.0.0.1 with the list of paths it was asked for in this test."""
    _server.hits.clear()
    return _server


@pytest.fixture(scope="module")
def content():
    return load_registry(CONTENT_DIR)


def make_invoice(**changes) -> InvoiceDocument:
    eur = lambda value: Money(Decimal(value), "EUR")  # noqa: E731
    doc = InvoiceDocument(
        invoice_id="inv-2026-0666",
        invoice_number="INV-2026-0666",
        issue_date=dt.date(2026, 3, 2),
        due_date=dt.date(2026, 4, 1),
        currency="EUR",
        language="en",
        locale="en_IE",
        seller=Seller(),
        buyer=Buyer(name="Harbour & Finch Ltd", address_lines=("1 Quay Street",), country="IE"),
        lines=(InvoiceLine(1, "Support", Decimal(1), Decimal(100), eur("100")),),
        tax_breakdown=(TaxBreakdown(Decimal(0), eur("100"), eur("0")),),
        subtotal=eur("100"),
        discount=eur("0"),
        tax_total=eur("0"),
        total=eur("100"),
        amount_paid=eur("0"),
        amount_credited=eur("0"),
        balance_due=eur("100"),
        payment_term_days=30,
        payment_reference="INV-2026-0666",
    )
    return dataclasses.replace(doc, **changes)


def pdf_text(pdf: bytes) -> str:
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode("utf-8")
    return re.sub(r"[\s\u00a0\u202f]+", " ", text)


def page(body: str, head: str = "") -> str:
    return (
        '<html><head><title>INV-2026-0666</title>'
        '<meta name="dcterms.created" content="2026-03-02">'
        f"{head}</head><body><p>Invoice</p>{body}</body></html>"
    )


# --- customer data ----------------------------------------------------------------------

HOSTILE_NAME = (
    "<script>alert('x')</script> {{ 7*7 }} {% raw %}{{ ''.__class__ }}{% endraw %} "
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
)


def test_customer_data_with_markup_and_template_syntax_prints_as_text(content, loopback):
    port = loopback.server_address[1]
    doc = make_invoice(
        buyer=Buyer(name=HOSTILE_NAME, address_lines=("1 Quay Street",), country="IE"),
        memo=f'<img src="http://127.0.0.1:{port}/memo.png"> <a rel="attachment" '
        'href="file:///etc/passwd">passwd</a>',
        lines=(
            InvoiceLine(
                1,
                f'<link rel="stylesheet" href="http://127.0.0.1:{port}/evil.css">Support',
                Decimal(1),
                Decimal(100),
                Money(Decimal(100), "EUR"),
                item_name="{{ doc.__class__ }}",
            ),
        ),
    )

    html, _ = render_html(doc, content)
    text = pdf_text(render_pdf(html))
    body = html.split("<body>")[1]
    printed = re.sub(r"\s", "", text)  # long names wrap over lines

    assert "<script>" not in body and "<img src=\"http" not in body and "<link" not in body
    assert "<a rel" not in body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; {{ 7*7 }} {% raw %}" in body
    assert re.sub(r"\s", "", HOSTILE_NAME) in printed
    assert f'<imgsrc="http://127.0.0.1:{port}/memo.png"><arel="attachment"' in printed
    assert "{{doc.__class__}}" in printed and "<class" not in text and " 49 " not in text
    assert loopback.hits == []


# --- templates ------------------------------------------------------------------------------


def test_templates_render_in_the_sandbox_with_autoescaping(content):
    environment = content.environment

    assert isinstance(environment, SandboxedEnvironment)
    assert environment.autoescape("templates/invoice/v3/invoice.html") is True
    rendered = environment.from_string("{{ name }}").render(name="<b>&</b>")
    assert rendered == "&lt;b&gt;&amp;&lt;/b&gt;"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ doc.__class__.__init__.__globals__ }}",
        "{{ doc.canonical.__func__.__globals__['hashlib'] }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ self._TemplateReference__context }}",
        "{{ '{0.__class__.__mro__}'.format(doc) }}",
        "{{ labels.payment_terms_days.format.__globals__ }}",
        "{% set leak = doc.seller.__dict__ %}{{ leak }}",
    ],
)
def test_a_template_cannot_reach_python_internals(content, source):
    template = content.environment.from_string(source)

    with pytest.raises(SecurityError):
        template.render(doc=make_invoice(), labels={"payment_terms_days": "{days} days"})


@pytest.mark.parametrize(
    "source",
    [
        '{% include "/etc/passwd" %}',
        '{% include "../pyproject.toml" %}',
        '{% include "templates/invoice/v3/../../../../pyproject.toml" %}',
        '{% import "registry.yaml" as registry %}',
        '{% extends "README.md" %}',
    ],
)
def test_a_template_can_load_only_registered_files(content, source):
    with pytest.raises(TemplateNotFound):
        content.environment.from_string(source).render()


def test_a_hostile_template_cannot_put_a_local_file_or_a_loopback_url_into_the_pdf(
    tmp_path, loopback, caplog
):
    """A draft template, registered like any other, that links /etc/passwd and the
    loopback server: it renders to HTML, and the PDF renderer refuses both links."""
    root = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, root)
    port = loopback.server_address[1]
    folder = root / "templates/invoice/v99"
    folder.mkdir()
    (folder / "invoice.html").write_text(
        '<html><head><title>{{ doc.invoice_number }}</title></head><body>'
        '<img src="file:///etc/passwd">'
        f'<img src="http://127.0.0.1:{port}/pixel.png"></body></html>'
    )
    data = yaml.safe_load((root / "registry.yaml").read_text())
    data["entries"].append(
        {
            "id": "invoice",
            "version": 99,
            "kind": "template",
            "status": "draft",
            "effective_from": "2018-01-01",
            "path": "templates/invoice/v99",
            "main": "invoice.html",
            "sha256": {"invoice.html": file_sha256(folder / "invoice.html")},
        }
    )
    (root / "registry.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    registry = load_registry(root)
    entry = next(e for e in registry.versions("invoice") if e.version == 99)

    html = registry.template(entry).render(doc=make_invoice())
    with caplog.at_level(logging.WARNING), pytest.raises(ContentFetchRefusedError):
        PdfRenderer(root).render(html)

    assert "document INV-2026-0666: refused to fetch `file:///etc/passwd`" in caplog.text
    assert loopback.hits == []


# --- what the PDF renderer fetches ------------------------------------------------------

_SVG_REACHING_OUT = (
    "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'>"
    "<image href='http://127.0.0.1:{port}/svg.png' width='10' height='10'/></svg>"
)

HOSTILE_LINKS = [
    ('<img src="file:///etc/passwd">', "", "file:///etc/passwd"),
    ('<img src="/etc/passwd">', "", "file:///etc/passwd"),
    ('<img src="../pyproject.toml">', "", "pyproject.toml"),
    ('<img src="themes/default/v3/../../../../etc/passwd">', "", "etc/passwd"),
    ('<img src="file://otherhost/etc/passwd">', "", "file://otherhost/etc/passwd"),
    ('<img src="http://127.0.0.1:{port}/pixel.png">', "", "http://127.0.0.1"),
    ('<img src="https://127.0.0.1:{port}/pixel.png">', "", "https://127.0.0.1"),
    ('<img src="http://127.0.0.1:{port}/redirect.png">', "", "/redirect.png"),
    ('<img src="ftp://127.0.0.1:{port}/pixel.png">', "", "ftp://127.0.0.1"),
    ('<img src="//127.0.0.1:{port}/pixel.png">', "", "//127.0.0.1"),
    ('<img src="base.png">', '<base href="http://127.0.0.1:{port}/">', "/base.png"),
    ("", '<link rel="stylesheet" href="http://127.0.0.1:{port}/evil.css">', "/evil.css"),
    ("", '<style>@import url("http://127.0.0.1:{port}/import.css");</style>', "/import.css"),
    ("", "<style>body {{ background: url(http://127.0.0.1:{port}/bg.png) }}</style>", "/bg.png"),
    (
        "<p style='font-family: evil'>x</p>",
        "<style>@font-face {{ font-family: evil; src: url(http://127.0.0.1:{port}/f.ttf) }}"
        "</style>",
        "/f.ttf",
    ),
    ('<a rel="attachment" href="file:///etc/passwd">passwd</a>', "", "file:///etc/passwd"),
    ("", '<link rel="attachment" href="/etc/passwd">', "file:///etc/passwd"),
    ('<object data="http://127.0.0.1:{port}/object.png"></object>', "", "/object.png"),
    ('<embed src="file:///etc/passwd">', "", "file:///etc/passwd"),
    (_SVG_REACHING_OUT, "", "/svg.png"),
    ('<img src="data:image/svg+xml,' + _SVG_REACHING_OUT.replace("'", "%27") + '">', "",
     "/svg.png"),
    ('<img src="q2c-attachment:contract.pdf">', "", "no attachment named `contract.pdf`"),
]


def test_without_the_content_fetcher_weasyprint_would_call_the_loopback_server(loopback):
    """The threat is real: WeasyPrint's own fetcher follows the link and the redirect."""
    port = loopback.server_address[1]
    html = page(f'<img src="http://127.0.0.1:{port}/pixel.png">'
                f'<img src="http://127.0.0.1:{port}/redirect.png">')

    HTML(string=html).write_pdf()

    assert sorted(loopback.hits) == ["/pixel.png", "/redirect.png"]


@pytest.mark.parametrize(("body", "head", "logged"), HOSTILE_LINKS)
def test_the_renderer_refuses_and_logs_every_other_url(loopback, caplog, body, head, logged):
    port = loopback.server_address[1]
    html = page(body.format(port=port), head.format(port=port))

    with caplog.at_level(logging.WARNING), pytest.raises(
        ContentFetchRefusedError, match="refused to fetch"
    ):
        render_pdf(html)

    refusals = [r.getMessage() for r in caplog.records if "refused to fetch" in r.getMessage()]
    assert refusals and refusals[0].startswith("document INV-2026-0666: refused to fetch")
    assert logged in refusals[0]
    assert loopback.hits == []


def test_a_symlink_out_of_the_content_store_is_refused(tmp_path):
    root = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, root)
    (root / "themes/default/v3/passwd.svg").symlink_to("/etc/passwd")
    (root / "themes/default/v3/etc").symlink_to("/etc", target_is_directory=True)
    renderer = PdfRenderer(root)

    for src in ("themes/default/v3/passwd.svg", "themes/default/v3/etc/passwd"):
        with pytest.raises(ContentFetchRefusedError, match="outside the content store"):
            renderer.render(page(f'<img src="{src}">'))


def test_content_store_files_and_data_urls_are_served(loopback):
    data_png = "data:image/png;base64," + base64.b64encode(png(4, 2, "blue")).decode()
    html = page(
        f'<img src="themes/default/v3/logo.svg"><img src="{data_png}">',
        '<style>@import url("data:text/css,p%20%7B%20color%3A%20green%20%7D");</style>',
    )

    reader = PdfReader(io.BytesIO(render_pdf(html)))

    images = reader.pages[0].images
    assert [(image.image.width, image.image.height) for image in images] == [(4, 2)]
    assert "/XObject" in reader.pages[0]["/Resources"]  # the logo, drawn as a form
    assert loopback.hits == []


# --- the document's own attachments -------------------------------------------------------

CONTRACT = b"%PDF-1.4\n% signed contract\n"


def test_attachments_are_embedded_and_linkable_from_the_document():
    renderer = PdfRenderer(CONTENT_DIR)
    html = page('<img src="q2c-attachment:proof%20of%20delivery.png">')
    attachments = [
        ("contract.pdf", CONTRACT, "application/pdf", "Signed contract"),
        ("proof of delivery.png", png(3, 5, "green"), "image/png", "Proof of delivery"),
    ]

    pdf = renderer.render(html, attachments=attachments)
    reader = PdfReader(io.BytesIO(pdf))

    assert reader.attachments == {
        "contract.pdf": [CONTRACT],
        "proof of delivery.png": [attachments[1][1]],
    }
    names = reader.trailer["/Root"]["/Names"]["/EmbeddedFiles"]["/Names"]
    specs = {str(names[i]): names[i + 1].get_object() for i in range(0, len(names), 2)}
    contract = specs["contract.pdf"]
    assert contract["/Desc"] == "Signed contract"
    assert contract["/EF"]["/F"].get_object()["/Subtype"] == "/application/pdf"
    assert contract["/EF"]["/F"].get_object()["/Params"]["/ModDate"] == "D:20260302000000Z"
    assert [(i.image.width, i.image.height) for i in reader.pages[0].images] == [(3, 5)]
    # Same inputs, same bytes; another document's file of the same name is its own.
    assert renderer.render(html, attachments=attachments) == pdf
    other = renderer.render(
        html, attachments=[("proof of delivery.png", png(7, 2, "red"), "image/png", "")]
    )
    assert [(i.image.width, i.image.height) for i in PdfReader(io.BytesIO(other)).pages[0].images
            ] == [(7, 2)]


@pytest.mark.parametrize(
    ("attachments", "message"),
    [
        ([("../contract.pdf", CONTRACT, "application/pdf", "")], "plain file name"),
        ([("", CONTRACT, "application/pdf", "")], "plain file name"),
        ([("contract.pdf", "text", "application/pdf", "")], "must be bytes"),
        ([("contract.pdf", CONTRACT, "pdf", "")], "mime type `pdf`"),
        ([("contract.pdf", CONTRACT, "application/pdf")], "must be (file name, bytes"),
        ([("a.pdf", CONTRACT, "application/pdf", "")] * 2, "attached twice"),
    ],
)
def test_an_unusable_attachment_is_refused_with_its_name(attachments, message):
    with pytest.raises(InvalidAttachmentError, match=re.escape(message)) as error:
        PdfRenderer(CONTENT_DIR).render(page(""), attachments=attachments)

    assert str(error.value).startswith("document INV-2026-0666: attachment ")
