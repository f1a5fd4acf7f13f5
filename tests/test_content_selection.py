"""Content selection: targeting, specificity, dates, drafts, fallbacks, and the record of it.

Most tests run on a small hand-made content store (`store`), so every expectation below is
counted by hand from the entries listed in its docstring; the last ones check the message
blocks and legal texts shipped in content/.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import pickle
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from content_support import (
    CONTENT_DIR,
    LABELS,
    PROBE_TEMPLATE,
    THEME_FILES,
    entry,
    invoice,
    pdf_pages,
    registry_data,
    write_registry,
)

from q2c.content.legal_cases import legal_cases
from q2c.content.registry import ContentNotFoundError, load_registry
from q2c.content.selection import select_content, selection_summary
from q2c.documents.email import render_payment_reminder_email
from q2c.documents.model import Buyer
from q2c.documents.pool import input_hash, record_manifest, render_to_store
from q2c.documents.render import PdfRenderer, render_html, render_pdf, resolve_content

DEC_15 = dt.date(2026, 12, 15)


def _build_store(root: Path) -> Path:
    """A content store whose selections can be worked out by hand.

    Templates (slot invoice): invoice v2 (any), invoice_enterprise v1 (segment enterprise),
    invoice_de v1 (country DE and language de), invoice_contoso v1 (brand contoso).
    Themes: default v1 (any), contoso v1 (brand contoso). Labels: en, de, ja, ar.
    Blocks: closure v1 (any, 2026-12-01..2026-12-31, top, en+de), enterprise_note v1
    (segment enterprise, bottom, en+de), email_only v1 (channel email, bottom, en),
    campaign v1 (segments smb and mid_market, 2027-01-11..2027-03-31, bottom, en+de).
    Legal: late_payment_default (en+de), late_payment_de (country DE, en+de),
    reverse_charge_eu (en+de), tax_exemption_non_eu (en).
    """
    probe = {"invoice.html": PROBE_TEMPLATE}
    entries = [
        entry(root, "invoice", "template", probe, version=2),
        entry(root, "invoice_enterprise", "template", probe, slot="invoice",
              targeting={"segment": "enterprise"}),
        entry(root, "invoice_de", "template", probe, slot="invoice",
              targeting={"country": "DE", "language": "de"}),
        entry(root, "invoice_contoso", "template", probe, slot="invoice",
              targeting={"brand": "Contoso"}),
        entry(root, "default", "theme", THEME_FILES),
        entry(root, "contoso", "theme", THEME_FILES, targeting={"brand": "contoso"}),
        entry(root, "invoice_labels", "texts", LABELS),
        entry(root, "closure", "blocks",
              {"en.html": "<p>Closed over the year end.</p>",
               "de.html": "<p>Zwischen den Jahren geschlossen.</p>"},
              placement="top", effective_from="2026-12-01", effective_to="2026-12-31"),
        entry(root, "enterprise_note", "blocks",
              {"en.html": "<p>Your account team.</p>", "de.html": "<p>Ihr Account-Team.</p>"},
              placement="bottom", targeting={"segment": "enterprise"}),
        entry(root, "email_only", "blocks", {"en.html": "<p>Reply to this email.</p>"},
              placement="bottom", targeting={"channel": "email"}),
        entry(root, "campaign", "blocks",
              {"en.html": "<p>Offer for {{ doc.buyer.name }} on {{ doc.invoice_number }}.</p>",
               "de.html": "<p>Angebot für {{ doc.buyer.name }}.</p>"},
              placement="bottom", targeting={"segment": ["smb", "mid_market"]},
              effective_from="2027-01-11", effective_to="2027-03-31"),
        entry(root, "late_payment_default", "legal",
              {"en.txt": "Late payment: statutory interest.", "de.txt": "Verzug: Zinsen."},
              case="late_payment"),
        entry(root, "late_payment_de", "legal",
              {"en.txt": "Late payment: section 288 BGB.", "de.txt": "Verzug: § 288 BGB."},
              case="late_payment", targeting={"country": "DE"}),
        entry(root, "reverse_charge_eu", "legal",
              {"en.txt": "Reverse charge.", "de.txt": "Steuerschuldnerschaft des "
               "Leistungsempfängers."}, case="reverse_charge_eu"),
        entry(root, "tax_exemption_non_eu", "legal", {"en.txt": "Not subject to VAT."},
              case="tax_exemption"),
    ]
    write_registry(root, {"entries": entries})
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return _build_store(tmp_path / "store")


def choices(selection) -> list[tuple[str, str, int, str]]:
    return [(c.role, c.entry.id, c.entry.version, c.why) for c in selection.choices]


# --- targeting ------------------------------------------------------------------------


def test_the_most_specific_match_wins_and_every_choice_says_why(store):
    doc = invoice(country="DE", language="de")

    selection = select_content(load_registry(store), doc, on=DEC_15, segment="enterprise")

    # invoice_de names two fields that match (country, language), invoice_enterprise one,
    # invoice none; closure is in its dates; a German buyer of a German seller with VAT
    # charged has one legal case, late payment, and the German text names country DE.
    assert choices(selection) == [
        ("template", "invoice_de", 1, "country=DE, language=de"),
        ("theme", "default", 1, "any reader"),
        ("labels", "invoice_labels", 1, "any reader"),
        ("block", "closure", 1, "any reader"),
        ("block", "enterprise_note", 1, "segment=enterprise"),
        ("legal", "late_payment_de", 1, "country=DE"),
    ]
    assert selection.cases == ("late_payment",)
    assert selection.fallbacks == ()
    assert selection.direction == "ltr" and not selection.is_preview


def test_a_country_and_language_without_content_fall_back_and_say_so(store):
    doc = invoice(country="FR", language="fr", locale="fr_FR", vat_id="FR40303265045")

    selection = select_content(
        load_registry(store), doc, on=dt.date(2027, 1, 15), segment="Enterprise"
    )

    assert choices(selection) == [
        ("template", "invoice_enterprise", 1, "segment=enterprise"),
        ("theme", "default", 1, "any reader"),
        ("labels", "invoice_labels", 1, "any reader"),
        ("block", "enterprise_note", 1, "segment=enterprise"),
        ("legal", "late_payment_default", 1, "any reader"),
    ]
    assert selection.fallbacks == (
        "labels invoice_labels: language fr -> en",
        "block enterprise_note: language fr -> en",
        "legal late_payment: country FR -> default",
        "legal late_payment_default: language fr -> en",
    )
    record = selection.record()
    assert record["fallbacks"] == list(selection.fallbacks)
    legal = record["choices"][-1]
    assert (legal["id"], legal["case"], legal["language"]) == ("late_payment_default",
                                                               "late_payment", "en")


def test_a_regional_language_falls_back_to_its_language_then_english(store):
    doc = invoice(country="AT", language="de_at", locale="de_AT", vat_id=None)

    selection = select_content(
        load_registry(store), doc, channel="email", on=dt.date(2027, 2, 1), segment="smb"
    )

    # invoice_de wants country DE: an Austrian reader gets the untargeted invoice.
    assert choices(selection) == [
        ("template", "invoice", 2, "any reader"),
        ("theme", "default", 1, "any reader"),
        ("labels", "invoice_labels", 1, "any reader"),
        ("block", "campaign", 1, "segment=smb"),
        ("block", "email_only", 1, "channel=email"),
        ("legal", "late_payment_default", 1, "any reader"),
    ]
    assert [(c.entry.id, c.language) for c in selection.choices if c.language] == [
        ("invoice_labels", "de"),
        ("campaign", "de"),
        ("email_only", "en"),
        ("late_payment_default", "de"),
    ]
    assert selection.fallbacks == (
        "labels invoice_labels: language de-AT -> de",
        "block campaign: language de-AT -> de",
        "block email_only: language de-AT -> en",
        "legal late_payment: country AT -> default",
        "legal late_payment_default: language de-AT -> de",
    )


def test_a_language_targeted_as_de_matches_a_regional_reader(store):
    doc = invoice(country="DE", language="de-CH")

    selection = select_content(load_registry(store), doc, on=DEC_15)

    assert choices(selection)[0] == ("template", "invoice_de", 1, "country=DE, language=de")


@pytest.mark.parametrize(
    ("on", "blocks"),
    [
        (dt.date(2026, 11, 30), []),
        (dt.date(2026, 12, 1), ["closure"]),
        (dt.date(2026, 12, 31), ["closure"]),
        (dt.date(2027, 1, 10), []),
        (dt.date(2027, 1, 11), ["campaign"]),
        (dt.date(2027, 3, 31), ["campaign"]),
        (dt.date(2027, 4, 1), []),
    ],
)
def test_blocks_run_from_their_first_to_their_last_day(store, on, blocks):
    doc = invoice(country="NL", language="en", locale="en_NL", vat_id=None)

    selection = select_content(load_registry(store), doc, on=on, segment="mid_market")

    assert [choice.entry.id for choice in selection.blocks] == blocks


def test_a_block_for_one_channel_stays_off_the_others(store):
    registry = load_registry(store)
    doc = invoice(country="NL", language="en", locale="en_NL")

    by_channel = {
        channel: [c.entry.id for c in select_content(
            registry, doc, channel=channel, on=dt.date(2026, 6, 1)).blocks]
        for channel in ("pdf", "email", "portal")
    }

    assert by_channel == {"pdf": [], "email": ["email_only"], "portal": []}


def test_a_brand_gets_its_theme_and_template(store):
    doc = invoice(country="US", language="en", locale="en_US", vat_id=None, tax_percent="0")

    selection = select_content(load_registry(store), doc, on=DEC_15, brand="CONTOSO")

    assert choices(selection)[:2] == [
        ("template", "invoice_contoso", 1, "brand=contoso"),
        ("theme", "contoso", 1, "brand=contoso"),
    ]
    assert select_content(load_registry(store), doc, on=DEC_15).theme.id == "default"


def test_ties_go_to_the_higher_version_then_to_the_first_id(store):
    data = registry_data(store)
    probe = {"invoice.html": PROBE_TEMPLATE}
    mid = {"segment": "mid_market"}
    data["entries"] += [
        entry(store, "invoice_b", "template", probe, version=3, slot="invoice", targeting=mid),
        entry(store, "invoice_a", "template", probe, version=1, slot="invoice", targeting=mid),
    ]
    write_registry(store, data)
    doc = invoice(country="NL", language="en", locale="en_NL")

    first = select_content(load_registry(store), doc, on=DEC_15, segment="mid_market")
    data["entries"].append(
        entry(store, "invoice_c", "template", probe, version=3, slot="invoice", targeting=mid)
    )
    write_registry(store, data)
    second = select_content(load_registry(store), doc, on=DEC_15, segment="mid_market")

    assert first.template.ref == "invoice_b@v3"  # v3 beats v1
    assert second.template.ref == "invoice_b@v3"  # same version: b sorts before c


def test_a_newer_version_replaces_the_older_whatever_its_targeting(store):
    data = registry_data(store)
    data["entries"].append(entry(
        store, "late_payment_de", "legal", {"en.txt": "Late payment (DE and AT)."},
        version=2, case="late_payment", targeting={"country": ["DE", "AT"]},
        effective_from="2027-01-01",
    ))
    write_registry(store, data)
    registry = load_registry(store)
    austrian = invoice(country="AT", language="en", locale="en_AT", vat_id=None)

    before = select_content(registry, austrian, on=dt.date(2026, 12, 31)).legal
    after = select_content(registry, austrian, on=dt.date(2027, 1, 1)).legal

    assert [(c.entry.ref, c.why) for c in before] == [("late_payment_default@v1", "any reader")]
    assert [(c.entry.ref, c.why) for c in after] == [("late_payment_de@v2", "country=AT")]


# --- drafts ---------------------------------------------------------------------------


def test_production_never_takes_a_draft_and_only_a_preview_is_watermarked(store):
    data = registry_data(store)
    data["entries"].append(entry(
        store, "closure", "blocks", {"en.html": "<p>New closure text.</p>"}, version=2,
        status="draft", placement="top",
    ))
    write_registry(store, data)
    registry = load_registry(store)
    doc = invoice(country="GB", language="en", locale="en_GB", vat_id=None)
    on = dt.date(2027, 6, 1)

    production_html, production = render_html(doc, registry, on=on)
    preview_html, preview = render_html(doc, registry, on=on, preview=True)

    assert [c.entry.ref for c in production.blocks] == []
    assert [(c.entry.ref, c.entry.status) for c in preview.blocks] == [("closure@v2", "draft")]
    assert not production.is_preview and preview.is_preview
    assert "DRAFT" not in production_html and "New closure text." not in production_html
    assert 'class="watermark">DRAFT – not valid<' in preview_html
    assert "New closure text." in preview_html


def test_a_substituted_version_is_a_preview_even_if_approved(store):
    registry = load_registry(store)
    doc = invoice(country="DE", language="de")

    selection = select_content(
        registry, doc, on=DEC_15, substitute=registry.version("invoice_enterprise", 1)
    )

    assert choices(selection)[0] == ("template", "invoice_enterprise", 1,
                                     "substituted for preview")
    assert selection.is_preview


# --- legal cases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "vat_id", "tax_percent", "cases"),
    [
        ("FR", "FR40303265045", "0", ("reverse_charge_eu", "late_payment")),
        ("FR", "FR40303265045", "20", ("late_payment",)),  # VAT charged: no note
        ("FR", None, "0", ("late_payment",)),  # no VAT id: not B2B reverse charge
        ("DE", "DE123456789", "0", ("late_payment",)),  # same country as the seller
        ("US", None, "0", ("tax_exemption", "late_payment")),
        ("CH", None, "8.1", ("late_payment",)),
    ],
)
def test_legal_cases_of_an_invoice(country, vat_id, tax_percent, cases):
    doc = invoice(country=country, vat_id=vat_id, tax_percent=tax_percent)

    assert legal_cases(doc) == cases


def test_a_legal_case_without_any_text_in_force_stops_the_document(store):
    data = registry_data(store)
    data["entries"] = [e for e in data["entries"] if e["id"] != "tax_exemption_non_eu"]
    write_registry(store, data)
    doc = invoice(country="US", language="en", locale="en_US", vat_id=None, tax_percent="0")

    with pytest.raises(ContentNotFoundError, match="legal text for case `tax_exemption`"):
        select_content(load_registry(store), doc, on=DEC_15)


# --- what templates get ----------------------------------------------------------------


def test_templates_get_blocks_legal_texts_and_direction(store):
    doc = invoice(country="SA", language="ar", locale="ar_SA", vat_id=None, tax_percent="0")
    doc = dataclasses.replace(doc, buyer=Buyer(name="<b>Evil</b> {{ 7*7 }}", country="SA"))

    html, selection = render_html(
        doc, load_registry(store), on=dt.date(2027, 2, 1),
        used=select_content(load_registry(store), doc, on=dt.date(2027, 2, 1), segment="smb"),
    )

    assert 'dir="rtl"' in html and "<h1>فاتورة</h1>" in html
    assert ('<div class="block" data-id="campaign" data-version="1" data-placement="bottom">'
            "<p>Offer for &lt;b&gt;Evil&lt;/b&gt; {{ 7*7 }} on INV-1.</p></div>") in html
    assert '<p class="legal" data-id="tax_exemption_non_eu" data-case="tax_exemption">' \
           "Not subject to VAT.</p>" in html
    assert '<p class="legal" data-id="late_payment_default" data-case="late_payment">' in html
    assert selection.direction == "rtl"


def test_a_fallback_is_logged_with_the_invoice_when_rendered(store, caplog):
    doc = invoice(number="INV-77", country="FR", language="fr", locale="fr_FR")

    with caplog.at_level(logging.INFO, logger="q2c.documents.render"):
        render_html(doc, load_registry(store), on=DEC_15)

    assert "invoice INV-77: content fallback labels invoice_labels: language fr -> en" in (
        caplog.text
    )
    assert "legal late_payment: country FR -> default" in caplog.text


# --- hashing and the record --------------------------------------------------------------


def test_the_selection_pickles_and_goes_into_the_input_hash(store):
    registry = load_registry(store)
    doc = invoice(country="DE", language="de")
    batch = resolve_content(registry, on=DEC_15)

    selection = batch.select(doc)

    assert pickle.loads(pickle.dumps(selection)) == selection
    assert pickle.loads(pickle.dumps(batch)).select(doc) == selection
    assert input_hash(doc, batch) == input_hash(doc, selection)
    # The closure block ends on 2026-12-31. A block leaving does not re-render a document
    # that may have been sent, so the hash stays; the selection itself does change.
    after = resolve_content(registry, on=dt.date(2027, 1, 1))
    assert [c.entry.id for c in selection.blocks] != [c.entry.id for c in after.select(doc).blocks]
    assert input_hash(doc, after) == input_hash(doc, batch)
    with pytest.raises(ValueError, match="inv-2"):
        input_hash(invoice(number="INV-2"), selection)


def test_a_new_legal_text_version_changes_the_input_hash(store):
    doc = invoice(country="DE", language="de")
    before = input_hash(doc, resolve_content(load_registry(store), on=DEC_15))
    data = registry_data(store)
    data["entries"].append(entry(
        store, "late_payment_de", "legal", {"en.txt": "Late payment, revised."}, version=2,
        case="late_payment", targeting={"country": "DE"},
    ))
    write_registry(store, data)

    after = input_hash(doc, resolve_content(load_registry(store), on=DEC_15))

    assert before != after


def test_one_batch_content_set_gives_each_invoice_its_own_selection(store):
    registry = load_registry(store)
    batch = resolve_content(registry, on=DEC_15)
    german = invoice(number="INV-DE", country="DE", language="de")
    american = invoice(number="INV-US", country="US", language="en", locale="en_US",
                       vat_id=None, tax_percent="0")

    _, de_selection = render_html(german, registry, used=batch)
    _, us_selection = render_html(american, registry, used=batch)

    assert [c.entry.id for c in de_selection.legal] == ["late_payment_de"]
    assert [c.entry.id for c in us_selection.legal] == ["tax_exemption_non_eu",
                                                        "late_payment_default"]


_OLD_MANIFEST_DDL = """
create schema q2c_ops;
create table q2c_ops.document_manifest (
    document_id varchar primary key, invoice_id varchar, invoice_number varchar,
    input_hash varchar, content_hash varchar, template_id varchar,
    template_version varchar, theme_id varchar, theme_version varchar, language varchar,
    path varchar, bytes integer, rendered_at timestamp, run_id varchar
);
"""


def test_each_document_records_its_selection_in_the_manifest(tmp_path):
    """A real rendering from the shipped content, recorded in a manifest table made before
    the `content_selection` column existed."""
    content = load_registry(CONTENT_DIR)
    doc = invoice(country="DE", language="de", issue_date=dt.date(2026, 3, 2))
    used = resolve_content(content, on=dt.date(2026, 6, 1))
    rendered = render_to_store(doc, content, PdfRenderer(CONTENT_DIR), used, tmp_path / "docs")
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    conn.execute(_OLD_MANIFEST_DDL)

    inserted = record_manifest(conn, [rendered], "run-1")
    stored = conn.execute(
        "select content_selection, content_selection->>'$.audience.country' "
        "from q2c_ops.document_manifest"
    ).fetchone()

    assert inserted == 1
    record = json.loads(stored[0])
    assert stored[1] == "DE"
    assert record == json.loads(rendered.content_selection)
    legal = [(c["id"], c["version"], c["why"]) for c in record["choices"] if c["role"] == "legal"]
    assert legal == [("late_payment_de", 1, "country=DE")]
    assert record["cases"] == ["late_payment"] and record["fallbacks"] == []
    template = record["choices"][0]
    assert (template["role"], template["id"]) == ("template", rendered.template_id)
    assert str(template["version"]) == rendered.template_version


def test_selection_summary_counts_versions_and_fallbacks():
    def record(*refs: str, fallbacks: tuple[str, ...] = ()) -> str:
        chosen = []
        for ref in refs:
            role, rest = ref.split(" ")
            content_id, version = rest.split("@v")
            chosen.append({"role": role, "id": content_id, "version": int(version)})
        return json.dumps({"choices": chosen, "fallbacks": list(fallbacks)})

    class Rendered:
        def __init__(self, content_selection: str):
            self.content_selection = content_selection

    rendered = [
        Rendered(record("template invoice@v3", "legal late_payment_de@v1")),
        Rendered(record("template invoice@v3", "legal reverse_charge_eu@v1",
                        "legal late_payment_fr@v1")),
        Rendered(record("template invoice@v2", "legal late_payment_default@v1",
                        fallbacks=("legal late_payment: country AT -> default",))),
    ]

    assert selection_summary(rendered) == {
        "fallback: legal late_payment: country AT -> default": 1,
        "legal late_payment_de v1": 1,
        "legal late_payment_default v1": 1,
        "legal late_payment_fr v1": 1,
        "legal reverse_charge_eu v1": 1,
        "template invoice v2": 1,
        "template invoice v3": 2,
    }


# --- the shipped blocks and legal texts ------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "country", "language", "vat_id", "tax", "on", "channel", "blocks", "legal"),
    [
        # Enterprise, Germany, in the year-end closure: both blocks; German late payment.
        ("enterprise", "DE", "de", "DE123456789", "19", DEC_15, "pdf",
         [("year_end_closure", "any reader"), ("account_manager", "segment=enterprise")],
         [("late_payment_de", "country=DE")]),
        # Small business in France, no VAT charged, by email during the campaign.
        ("smb", "FR", "fr", "FR40303265045", "0", dt.date(2027, 2, 1), "email",
         [("e_invoicing_campaign", "segment=smb, channel=email")],
         [("reverse_charge_eu", "any reader"), ("late_payment_fr", "country=FR")]),
        # Mid-market in the US after the campaign: the export reason, default late payment.
        ("mid_market", "US", "en", None, "0", dt.date(2027, 4, 1), "pdf", [],
         [("tax_exemption_non_eu", "any reader"), ("late_payment_default", "any reader")]),
        # The campaign runs on pdf and email only, not in the portal.
        ("smb", "NL", "nl", "NL123456789B01", "21", dt.date(2027, 3, 31), "portal", [],
         [("late_payment_nl", "country=NL")]),
    ],
)
def test_shipped_blocks_and_legal_texts_by_reader(
    segment, country, language, vat_id, tax, on, channel, blocks, legal
):
    doc = invoice(country=country, language=language, locale=f"{language}_{country}",
                  vat_id=vat_id, tax_percent=tax)

    selection = select_content(
        load_registry(CONTENT_DIR), doc, channel=channel, on=on, segment=segment
    )

    assert [(c.entry.id, c.why) for c in selection.blocks] == blocks
    assert [(c.entry.id, c.why) for c in selection.legal] == legal
    assert all(c.language == language for c in (*selection.blocks, *selection.legal))


def test_a_country_without_its_own_late_payment_text_falls_back_to_the_default():
    doc = invoice(country="ES", language="es", locale="es_ES", vat_id="ESB12345678")

    selection = select_content(load_registry(CONTENT_DIR), doc, on=dt.date(2026, 6, 1))

    assert [c.entry.id for c in selection.legal] == ["late_payment_default"]
    assert "legal late_payment: country ES -> default" in selection.fallbacks


def test_the_shipped_store_copied_elsewhere_selects_the_same(tmp_path):
    shutil.copytree(CONTENT_DIR, tmp_path / "content")
    doc = invoice(country="DE", language="de")

    here = select_content(load_registry(CONTENT_DIR), doc, on=DEC_15, segment="enterprise")
    there = select_content(load_registry(tmp_path / "content"), doc, on=DEC_15,
                           segment="enterprise")

    assert choices(here) == choices(there)


# --- the shipped credit note and reminder templates ---------------------------------------


def test_credit_note_names_the_invoice_it_corrects_and_the_reverse_charge():
    content = load_registry(CONTENT_DIR)
    # A French business customer, no VAT charged: reverse charge; 2 x 100.00 = 200.00.
    doc = invoice(number="CN-12", country="FR", language="fr", locale="fr_FR",
                  vat_id="FR40303265045", tax_percent="0", lines=2)
    selection = select_content(content, doc, document="credit_note", on=dt.date(2026, 6, 1))

    html, _ = render_html(doc, content, used=selection, extra={
        "credited_invoice": {"number": "INV-7", "issue_date": dt.date(2026, 5, 4)}})
    text = " ".join(pdf_pages(render_pdf(html)))

    assert [c.entry.id for c in selection.legal] == ["reverse_charge_eu"]  # no late payment
    assert "AVOIR" in text and "CN-12" in text
    assert "Cet avoir rectifie la facture INV-7 du 4 mai 2026." in text
    assert "Montant de l'avoir 200,00 €" in text
    assert "Autoliquidation : la TVA est due par le preneur" in text
    assert "DRAFT" not in text and "BROUILLON" not in text


def test_payment_reminder_letter_and_email_count_days_overdue():
    content = load_registry(CONTENT_DIR)
    # Due 2026-12-31 (issued 2026-12-01, 30 days); reminded 2027-01-20: 20 days overdue.
    doc = invoice(number="INV-5", country="DE", language="de")
    as_of, pay_by = dt.date(2027, 1, 20), dt.date(2027, 1, 30)
    selection = select_content(content, doc, document="payment_reminder", on=as_of)

    html, _ = render_html(doc, content, used=selection, extra={
        "reminder": {"date": as_of, "pay_by": pay_by, "days_overdue": 20}})
    letter = " ".join(pdf_pages(render_pdf(html)))
    email = render_payment_reminder_email(doc, content, as_of=as_of, pay_by=pay_by)

    assert "ZAHLUNGSERINNERUNG" in letter
    assert "INV-5 01.12.2026 31.12.2026 20 119,00 €" in letter
    assert "Bitte überweisen Sie 119,00 € bis zum 30.01.2027" in letter
    assert "§ 288 Abs. 2 BGB" in letter
    assert email.subject == "Zahlungserinnerung: Rechnung INV-5 von Northwind Analytics GmbH"
    body = re.sub(r"[\s\u00a0\u202f]+", " ", email.text)
    assert "unsere Rechnung INV-5 vom 01.12.2026 war am 31.12.2026 fällig" in body
    assert "Bitte überweisen Sie 119,00 € bis zum 30.01.2027" in body
    assert "§ 288 Abs. 2 BGB" in body and "§ 288 Abs. 2 BGB" in email.html
    assert [c["id"] for c in email.content_selection["choices"]][:1] == [
        "payment_reminder_email_html"
    ]
