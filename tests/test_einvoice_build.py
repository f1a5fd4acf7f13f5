"""EN 16931 e-invoices from issued ERP invoices: arithmetic, VAT categories, holds.

Every expected amount below is computed by hand in the comment next to it; the ERP figures
the invoices start from are written out, never derived by the code under test. The last
tests run every invoice built here through the official validators: UBL through the UBL 2.1
XSD, the CEN EN 16931 rules and the Peppol BIS 3 rules, CII through its XSD and the CEN
rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
from decimal import Decimal

import pytest

from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.einvoice import calc
from q2c.einvoice.build import (
    EInvoiceNotCompliant,
    build_credit_note,
    build_einvoice,
    check_compliance,
    parse_participant_id,
    vat_category_for,
)
from q2c.einvoice.cii import read_cii, write_cii
from q2c.einvoice.model import (
    CREDIT_NOTE,
    EN16931_CUSTOMIZATION_ID,
    Address,
    AllowanceCharge,
    Identifier,
    PrecedingInvoice,
)
from q2c.einvoice.ubl import read_ubl, write_ubl
from q2c.einvoice.validate import validator_for
from q2c.money import Money
from q2c.settings import Seller, Settings

D = Decimal
ISSUED = dt.date(2026, 3, 2)

GERMAN_BUYER = Buyer(
    name="Müller & Söhne Maschinenbau AG",
    address_lines=("Industriestraße 12", "70565 Stuttgart"),
    country="DE",
    vat_id="DE129273398",
    email="ap@mueller-soehne.example",
    contact_name="Katrin Schulz",
)
GERMAN_ADDRESS = Address(
    line1="Industriestraße 12", city="Stuttgart", postal_code="70565", country="DE"
)
GERMAN_ENDPOINT = "9930:DE129273398"
FRENCH_BUYER = Buyer(
    name="Atelier Lumière SARL",
    address_lines=("12 rue de la République", "69002 Lyon"),
    country="FR",
    vat_id="FR61954506077",
    email="compta@atelier-lumiere.example",
)
FRENCH_ENDPOINT = "9957:FR61954506077"
JAPANESE_BUYER = Buyer(
    name="Sakura Data KK",
    address_lines=("1-1 Marunouchi, Chiyoda-ku", "Tokyo 100-0005"),
    country="JP",
    email="keiri@sakura-data.example",
)
JAPANESE_ENDPOINT = "0088:4500000000018"


def erp_invoice(
    lines: list[tuple[str, str | None, str | None, str]],
    taxes: list[tuple[str | None, str, str]],
    total: str,
    *,
    number: str = "INV-2026-0042",
    currency: str = "EUR",
    buyer: Buyer = GERMAN_BUYER,
    discount: str = "0",
    discount_line: str | None = None,
    paid: str = "0",
    memo: str | None = None,
) -> InvoiceDocument:
    """An invoice as the ERP issued it. `lines` are (description, quantity, unit price,
    amount), `taxes` (rate, taxable, tax); the tax total is the sum of the tax lines and the
    subtotal the sum of the line amounts, as the ERP records them."""

    def money(value: str) -> Money:
        return Money(D(value), currency)

    items = [
        InvoiceLine(
            index=index,
            description=text,
            quantity=None if qty is None else D(qty),
            unit_price=None if price is None else D(price),
            amount=money(amount),
        )
        for index, (text, qty, price, amount) in enumerate(lines, start=1)
    ]
    if discount_line:
        items.append(InvoiceLine(
            index=len(items) + 1, description=discount_line, quantity=None, unit_price=None,
            amount=money(f"-{discount}"), kind="discount",
        ))
    breakdown = tuple(
        TaxBreakdown(None if rate is None else D(rate), money(taxable), money(tax))
        for rate, taxable, tax in taxes
    )
    subtotal = sum((D(amount) for *_, amount in lines), D(0))
    tax_total = sum((D(tax) for *_, tax in taxes), D(0))
    return InvoiceDocument(
        invoice_id=number.lower(),
        invoice_number=number,
        issue_date=ISSUED,
        due_date=ISSUED + dt.timedelta(days=30),
        currency=currency,
        language="de",
        locale="de_DE",
        seller=Seller(),
        buyer=buyer,
        lines=tuple(items),
        tax_breakdown=breakdown,
        subtotal=money(str(subtotal)),
        discount=money(discount),
        tax_total=money(str(tax_total)),
        total=money(total),
        amount_paid=money(paid),
        amount_credited=money("0"),
        balance_due=money(str(D(total) - D(paid))),
        payment_term_days=30,
        payment_reference=number,
        memo=memo,
        account_key="ACC-1042",
    )


def german(doc: InvoiceDocument, **options):
    return build_einvoice(
        doc, buyer_endpoint=GERMAN_ENDPOINT, buyer_address=GERMAN_ADDRESS, **options
    )


def rows(einvoice) -> list[tuple]:
    return [
        (row.category, row.rate, row.taxable_amount, row.tax_amount,
         row.exemption_reason, row.exemption_reason_code)
        for row in einvoice.vat_breakdown
    ]


def totals(einvoice) -> tuple:
    t = einvoice.totals
    return (t.line_total, t.allowance_total, t.tax_exclusive, t.tax_total, t.tax_inclusive,
            t.prepaid, t.rounding, t.payable)


# --- the invoices the brief asks for, each with its hand-computed result ----------------------


def german_b2b() -> InvoiceDocument:
    # 19 %: 800.00 + 2 x 150.00 = 1100.00, VAT 209.00; 7 %: 3 x 24.90 = 74.70, VAT 5.229
    # -> 5.23; total 1174.70 + 214.23 = 1388.93.
    return erp_invoice(
        [("Analytics Platform subscription, March 2026", "1", "800.00", "800.00"),
         ("Onboarding workshop (days)", "2", "150.00", "300.00"),
         ("Printed handbook", "3", "24.90", "74.70")],
        [("19", "1100.00", "209.00"), ("7", "74.70", "5.23")],
        "1388.93",
    )


def test_german_b2b_invoice_with_two_rates_follows_en16931():
    einvoice = german(german_b2b(), buyer_reference="PO-4711")

    assert [(ln.id, ln.net_amount, ln.vat_category, ln.vat_rate) for ln in einvoice.lines] == [
        ("1", D("800.00"), "S", D(19)),
        ("2", D("300.00"), "S", D(19)),
        ("3", D("74.70"), "S", D(7)),
    ]
    assert rows(einvoice) == [
        ("S", D(19), D("1100.00"), D("209.00"), None, None),
        ("S", D(7), D("74.70"), D("5.23"), None, None),
    ]
    assert totals(einvoice) == (
        D("1174.70"), None, D("1174.70"), D("214.23"), D("1388.93"), None, None, D("1388.93")
    )
    assert einvoice.type_code == "380"
    assert einvoice.buyer_reference == "PO-4711"
    assert einvoice.buyer.endpoint == Identifier("DE129273398", "9930")
    assert einvoice.seller.endpoint == Identifier("DE811907980", "9930")
    assert einvoice.seller.vat_id == "DE811907980"
    assert einvoice.buyer.vat_id == "DE129273398"
    payment = einvoice.payment
    assert payment.means_code == "58"
    assert payment.remittance_information == "INV-2026-0042"
    assert payment.accounts[0].account_id == "DE89370400440532013000"
    assert payment.accounts[0].service_provider_id == "COBADEFFXXX"
    assert einvoice.due_date == dt.date(2026, 4, 1)
    assert check_compliance(einvoice) == []


def test_lines_are_matched_to_rates_by_the_erp_taxable_amounts_or_given_explicitly():
    doc = german_b2b()
    explicit = german(doc, line_vat_rates={1: D(19), 2: D(19), 3: D(7)})
    assert explicit == german(doc)

    # Two 19 % lines of 50.00 and a 7 % line of 50.00: any line could be the 7 % one.
    ambiguous = erp_invoice(
        [("A", "1", "50.00", "50.00"), ("B", "1", "50.00", "50.00"),
         ("C", "1", "50.00", "50.00")],
        [("19", "100.00", "19.00"), ("7", "50.00", "3.50")],
        "172.50",
    )
    with pytest.raises(EInvoiceNotCompliant) as held:
        german(ambiguous)
    assert held.value.rules == ("BR-CO-04",)
    assert "line_vat_rates" in str(held.value)
    resolved = german(ambiguous, line_vat_rates={1: D(19), 2: D(7), 3: D(19)})
    assert [ln.vat_rate for ln in resolved.lines] == [D(19), D(7), D(19)]


def price_inclusive() -> InvoiceDocument:
    # 3 x 9.99 EUR including 19 % VAT = 29.97. The ERP took the VAT out of the total:
    # 29.97 / 1.19 = 25.1849 -> 25.18 taxable, 4.79 VAT.
    return erp_invoice(
        [("Dashboard licence (price incl. VAT)", "3", "9.99", "29.97")],
        [("19", "25.18", "4.79")],
        "29.97",
        number="INV-2026-0043",
    )


def test_price_inclusive_line_is_made_net_and_the_cent_lands_in_rounding():
    einvoice = german(price_inclusive(), prices_include_vat=True)

    (line,) = einvoice.lines
    # 9.99 / 1.19 = 8.3949579... -> 8.394958 (six decimals); 29.97 / 1.19 -> 25.18.
    assert (line.quantity, line.net_price, line.net_amount) == (D(3), D("8.394958"), D("25.18"))
    # EN 16931: VAT on the sum of nets, 25.18 x 19 % = 4.7842 -> 4.78; 25.18 + 4.78 = 29.96,
    # and the ERP's 29.97 leaves 0.01 for BT-114.
    assert rows(einvoice) == [("S", D(19), D("25.18"), D("4.78"), None, None)]
    assert totals(einvoice) == (
        D("25.18"), None, D("25.18"), D("4.78"), D("29.96"), None, D("0.01"), D("29.97")
    )


def test_erp_total_one_cent_off_the_en16931_sum_goes_only_into_rounding():
    # The ERP rounded VAT per line: 10.04 x 19 % = 1.9076 -> 1.91, three times 5.73, total
    # 30.12 + 5.73 = 35.85. EN 16931 rounds once: 30.12 x 19 % = 5.7228 -> 5.72, 35.84.
    doc = erp_invoice(
        [("API calls, tier 1", "1", "10.04", "10.04"),
         ("API calls, tier 2", "1", "10.04", "10.04"),
         ("API calls, tier 3", "1", "10.04", "10.04")],
        [("19", "30.12", "5.73")],
        "35.85",
        number="INV-2026-0044",
    )
    einvoice = german(doc)

    assert [line.net_amount for line in einvoice.lines] == [D("10.04")] * 3
    assert rows(einvoice) == [("S", D(19), D("30.12"), D("5.72"), None, None)]
    assert totals(einvoice) == (
        D("30.12"), None, D("30.12"), D("5.72"), D("35.84"), None, D("0.01"), D("35.85")
    )


def test_tax_off_beyond_rounding_is_held_naming_the_rule():
    # 1000.00 x 19 % = 190.00, but the ERP charged 200.00 (and a total to match).
    doc = erp_invoice(
        [("Analytics Platform subscription", "1", "1000.00", "1000.00")],
        [("19", "1000.00", "200.00")],
        "1200.00",
        number="INV-2026-0045",
    )
    with pytest.raises(EInvoiceNotCompliant) as held:
        german(doc)
    assert "BR-S-09" in held.value.rules
    assert "BR-CO-15" in held.value.rules  # 1200.00 is 10.00 off 1190.00: not rounding
    assert held.value.einvoice.totals.tax_total == D("190.00")


def document_allowance() -> InvoiceDocument:
    # 1000.00 less a 50.00 discount = 950.00 taxable, 19 % = 180.50, total 1130.50.
    return erp_invoice(
        [("Analytics Platform subscription, annual", "1", "1000.00", "1000.00")],
        [("19", "950.00", "180.50")],
        "1130.50",
        number="INV-2026-0046",
        discount="50.00",
        discount_line="Loyalty discount 5 %",
    )


def test_discount_becomes_a_document_allowance_with_its_vat_category():
    einvoice = german(document_allowance())

    assert einvoice.allowances_charges == (
        AllowanceCharge(
            is_charge=False, amount=D("50.00"), vat_category="S", vat_rate=D(19),
            reason="Loyalty discount 5 %", reason_code="95",
        ),
    )
    assert [line.net_amount for line in einvoice.lines] == [D("1000.00")]
    assert rows(einvoice) == [("S", D(19), D("950.00"), D("180.50"), None, None)]
    assert totals(einvoice) == (
        D("1000.00"), D("50.00"), D("950.00"), D("180.50"), D("1130.50"), None, None,
        D("1130.50"),
    )


def split_discount() -> InvoiceDocument:
    # 19 %: 100.00, 7 %: 100.00; the ERP spread a 20.00 discount evenly: taxable 90.00 each,
    # VAT 17.10 and 6.30; total 180.00 + 23.40 = 203.40.
    return erp_invoice(
        [("Consulting hour", "1", "100.00", "100.00"), ("Printed report", "1", "100.00",
                                                         "100.00")],
        [("19", "90.00", "17.10"), ("7", "90.00", "6.30")],
        "203.40",
        number="INV-2026-0047",
        discount="20.00",
        discount_line="Discount",
    )


def test_a_discount_over_two_rates_is_split_as_the_erp_split_it():
    einvoice = german(split_discount(), line_vat_rates={1: D(19), 2: D(7)})

    assert [(a.amount, a.vat_category, a.vat_rate) for a in einvoice.allowances_charges] == [
        (D("10.00"), "S", D(19)), (D("10.00"), "S", D(7)),
    ]
    assert rows(einvoice) == [
        ("S", D(19), D("90.00"), D("17.10"), None, None),
        ("S", D(7), D("90.00"), D("6.30"), None, None),
    ]
    assert totals(einvoice)[-1] == D("203.40")


def jpy_invoice() -> InvoiceDocument:
    # Whole yen. 3 x 333.33 = 999.99 -> 1000; 7 x 0.5 = 3.5 -> 4; 1 x 12345 = 12345;
    # lines 13349, VAT 10 % = 1334.9 -> 1335, total 14684.
    return erp_invoice(
        [("Analytics seats", "3", "333.33", "1000"),
         ("API calls", "7", "0.5", "4"),
         ("Implementation package", "1", "12345", "12345")],
        [("10", "13349", "1335")],
        "14684",
        number="INV-2026-0048",
        currency="JPY",
        buyer=JAPANESE_BUYER,
    )


def test_jpy_invoice_has_whole_yen_amounts():
    einvoice = build_einvoice(jpy_invoice(), buyer_endpoint=JAPANESE_ENDPOINT)

    seats, calls, package = einvoice.lines
    assert (seats.quantity, seats.net_price, seats.base_quantity, seats.net_amount) == (
        D(3), D("333.33"), None, D(1000)
    )
    # 7 x 0.5 = 3.5 is 0.5 away from the 4 yen charged, beyond Peppol's 0.02 slack, so the
    # price is stated per 7 units: 7 x (4 / 7) = 4.
    assert (calls.quantity, calls.net_price, calls.base_quantity, calls.net_amount) == (
        D(7), D(4), D(7), D(4)
    )
    assert package.net_amount == D(12345)
    assert rows(einvoice) == [("S", D(10), D(13349), D(1335), None, None)]
    assert totals(einvoice) == (
        D(13349), None, D(13349), D(1335), D(14684), None, None, D(14684)
    )
    assert all(-value.as_tuple().exponent == 0 for value in totals(einvoice) if value)
    assert einvoice.payment.means_code == "30"  # not EUR, so not SEPA


def test_kwd_amounts_are_sent_with_two_decimals_only_when_the_third_is_zero():
    # 100.000 KWD at 19 % = 19.000, total 119.000: written as 100.00, 19.00, 119.00.
    whole = erp_invoice(
        [("Analytics Platform subscription", "1", "100.000", "100.000")],
        [("19", "100.000", "19.000")], "119.000", number="INV-2026-0049", currency="KWD",
    )
    einvoice = german(whole)
    assert totals(einvoice) == (
        D("100.00"), None, D("100.00"), D("19.00"), D("119.00"), None, None, D("119.00")
    )
    assert str(einvoice.lines[0].net_amount) == "100.00"

    # 12.345 KWD has a fils digit EN 16931 cannot carry (BR-DEC-23 on the line, -19/-20 on
    # the VAT breakdown); the invoice is held, not rounded to 12.35.
    fils = erp_invoice(
        [("Analytics Platform subscription", "1", "12.345", "12.345")],
        [("19", "12.345", "2.346")], "14.691", number="INV-2026-0050", currency="KWD",
    )
    with pytest.raises(EInvoiceNotCompliant) as held:
        german(fils)
    assert {"BR-DEC-23", "BR-DEC-19", "BR-DEC-20", "BR-DEC-18"} <= set(held.value.rules)
    assert held.value.einvoice.lines[0].net_amount == D("12.345")


def reverse_charge(buyer: Buyer = FRENCH_BUYER) -> InvoiceDocument:
    # A German seller's services to a French business: no German VAT, 2000.00 net.
    return erp_invoice(
        [("Data platform consulting (days)", "4", "500.00", "2000.00")],
        [("0", "2000.00", "0.00")],
        "2000.00",
        number="INV-2026-0051",
        buyer=buyer,
    )


def test_reverse_charge_to_a_french_business_is_category_ae_with_a_note():
    einvoice = build_einvoice(reverse_charge(), buyer_endpoint=FRENCH_ENDPOINT)

    assert [(ln.vat_category, ln.vat_rate) for ln in einvoice.lines] == [("AE", D(0))]
    assert rows(einvoice) == [
        ("AE", D(0), D("2000.00"), D("0.00"), "Reverse charge", "VATEX-EU-AE")
    ]
    assert totals(einvoice) == (
        D("2000.00"), None, D("2000.00"), D("0.00"), D("2000.00"), None, None, D("2000.00")
    )
    assert einvoice.buyer.vat_id == "FR61954506077"
    assert einvoice.seller.vat_id == "DE811907980"
    ((_, note),) = einvoice.notes
    assert note.startswith("Reverse charge")


def test_reverse_charge_without_the_buyer_vat_id_is_held_naming_br_ae_02():
    no_vat = dataclasses.replace(FRENCH_BUYER, vat_id=None)
    with pytest.raises(EInvoiceNotCompliant) as held:
        build_einvoice(reverse_charge(no_vat), buyer_endpoint=FRENCH_ENDPOINT)

    assert held.value.rules == ("BR-AE-02",)
    assert held.value.invoice_number == "INV-2026-0051"
    assert "VAT id" in held.value.problems[0].message
    assert held.value.einvoice.vat_breakdown[0].category == "AE"
    # A render worker hands the hold to its parent process intact.
    again = pickle.loads(pickle.dumps(held.value))
    assert (again.rules, again.einvoice, str(again)) == (
        held.value.rules, held.value.einvoice, str(held.value)
    )


def credit_note() -> InvoiceDocument:
    # Two workshop days credited: 2 x 150.00 = 300.00, 19 % = 57.00, total 357.00.
    return erp_invoice(
        [("Onboarding workshop (days), credited", "2", "150.00", "300.00")],
        [("19", "300.00", "57.00")],
        "357.00",
        number="CN-2026-0007",
    )


def test_credit_note_references_the_invoice_it_corrects():
    einvoice = build_credit_note(
        credit_note(),
        preceding_invoice="INV-2026-0042",
        preceding_issue_date=dt.date(2026, 3, 2),
        buyer_endpoint=GERMAN_ENDPOINT,
        buyer_address=GERMAN_ADDRESS,
    )

    assert (einvoice.kind, einvoice.type_code, einvoice.number) == (
        CREDIT_NOTE, "381", "CN-2026-0007"
    )
    assert einvoice.preceding_invoices == (
        PrecedingInvoice("INV-2026-0042", dt.date(2026, 3, 2)),
    )
    assert rows(einvoice) == [("S", D(19), D("300.00"), D("57.00"), None, None)]
    assert totals(einvoice)[-1] == D("357.00")
    with pytest.raises(ValueError, match="name the invoice it corrects"):
        build_credit_note(credit_note(), preceding_invoice="")


def negative_invoice() -> InvoiceDocument:
    # A correction as a negative invoice: -100.00, 19 % = -19.00, total -119.00.
    return erp_invoice(
        [("Refund of an unused seat", "1", "-100.00", "-100.00")],
        [("19", "-100.00", "-19.00")],
        "-119.00",
        number="INV-2026-0052",
    )


def test_negative_invoice_keeps_prices_positive_and_amounts_negative():
    einvoice = german(negative_invoice())

    (line,) = einvoice.lines
    assert (line.quantity, line.net_price, line.net_amount) == (D(-1), D("100.00"), D("-100.00"))
    assert rows(einvoice) == [("S", D(19), D("-100.00"), D("-19.00"), None, None)]
    assert totals(einvoice) == (
        D("-100.00"), None, D("-100.00"), D("-19.00"), D("-119.00"), None, None, D("-119.00")
    )


def test_paid_amount_is_prepaid_and_reduces_the_amount_due():
    doc = dataclasses.replace(german_b2b(), amount_paid=Money(D("388.93"), "EUR"))
    einvoice = german(doc)
    # 1388.93 - 388.93 prepaid = 1000.00 due.
    assert (einvoice.totals.prepaid, einvoice.totals.payable) == (D("388.93"), D("1000.00"))


# --- other holds and derivations --------------------------------------------------------------


def test_missing_buyer_endpoint_holds_a_peppol_invoice_but_not_a_factur_x_one():
    with pytest.raises(EInvoiceNotCompliant) as held:
        build_einvoice(german_b2b(), buyer_address=GERMAN_ADDRESS)
    assert held.value.rules == ("PEPPOL-EN16931-R010",)

    plain = build_einvoice(german_b2b(), buyer_address=GERMAN_ADDRESS, peppol=False)
    assert plain.customization_id == EN16931_CUSTOMIZATION_ID
    assert plain.profile_id is None


def test_missing_seller_vat_id_is_held_naming_br_s_02():
    doc = dataclasses.replace(german_b2b(), seller=dataclasses.replace(Seller(), vat_id=""))
    with pytest.raises(EInvoiceNotCompliant) as held:
        german(doc)
    assert "BR-S-02" in held.value.rules
    assert "BR-CO-26" in held.value.rules


def test_german_buyer_without_a_structured_address_is_held_for_city_and_post_code():
    with pytest.raises(EInvoiceNotCompliant) as held:
        build_einvoice(german_b2b(), buyer_endpoint=GERMAN_ENDPOINT)
    assert held.value.rules == ("DE-R-009",)  # the printed "70565 Stuttgart" is the city


def test_exempt_supply_needs_an_exemption_reason():
    doc = erp_invoice(
        [("Training course (exempt)", "1", "500.00", "500.00")],
        [("0", "500.00", "0.00")],
        "500.00",
        number="INV-2026-0053",
    )
    with pytest.raises(EInvoiceNotCompliant) as held:
        german(doc, zero_rate_category="E")
    assert held.value.rules == ("BR-E-10",)

    einvoice = german(
        doc,
        exemption_reason="Exempt educational service (§ 4 Nr. 21 UStG)",
        exemption_reason_code="VATEX-EU-132",
    )
    assert rows(einvoice) == [
        ("E", D(0), D("500.00"), D("0.00"),
         "Exempt educational service (§ 4 Nr. 21 UStG)", "VATEX-EU-132")
    ]


def test_intra_community_supply_needs_the_delivery_date():
    doc = reverse_charge()
    with pytest.raises(EInvoiceNotCompliant) as held:
        build_einvoice(doc, buyer_endpoint=FRENCH_ENDPOINT, zero_rate_category="K")
    assert held.value.rules == ("BR-IC-11",)

    einvoice = build_einvoice(
        doc, buyer_endpoint=FRENCH_ENDPOINT, zero_rate_category="K",
        delivery_date=dt.date(2026, 2, 27),
    )
    assert rows(einvoice)[0][0] == "K"
    assert einvoice.delivery.address.country == "FR"


@pytest.mark.parametrize(
    ("rate", "buyer_country", "options", "category"),
    [
        (D(19), "DE", {}, "S"),
        (D(19), "FR", {}, "S"),
        (D(0), "FR", {}, "AE"),
        (D(0), "US", {}, "O"),
        (D(0), "DE", {}, "Z"),
        (D(0), "DE", {"exempt": True}, "E"),
        (D(0), "FR", {"zero_rate_category": "K"}, "K"),
        (D(0), "US", {"zero_rate_category": "G"}, "G"),
        (None, "AT", {}, "AE"),
    ],
)
def test_vat_category_of_an_erp_rate(rate, buyer_country, options, category):
    assert vat_category_for(rate, "DE", buyer_country, **options) == category


def test_not_subject_to_vat_drops_both_vat_ids_and_needs_another_seller_identifier():
    doc = erp_invoice(
        [("Analytics Platform subscription", "1", "900.00", "900.00")],
        [("0", "900.00", "0.00")],
        "900.00",
        number="INV-2026-0054",
        buyer=dataclasses.replace(JAPANESE_BUYER, country="US", vat_id=None),
    )
    with pytest.raises(EInvoiceNotCompliant) as held:
        build_einvoice(doc, buyer_endpoint=JAPANESE_ENDPOINT)
    assert held.value.rules == ("BR-CO-26",)
    draft = held.value.einvoice
    assert (draft.seller.vat_id, draft.lines[0].vat_rate) == (None, None)
    assert rows(draft) == [
        ("O", None, D("900.00"), D("0.00"), "Not subject to VAT", "VATEX-EU-O")
    ]


@pytest.mark.parametrize(
    ("text", "identifier"),
    [
        ("0088:5790000435951", Identifier("5790000435951", "0088")),
        ("9930:DE123456789", Identifier("DE123456789", "9930")),
        ("iso6523-actorid-upis::0192:987654321", Identifier("987654321", "0192")),
    ],
)
def test_peppol_participant_id_becomes_an_endpoint(text, identifier):
    assert parse_participant_id(text) == identifier


@pytest.mark.parametrize("text", ["DE123456789", "88:123", "0088:", ""])
def test_a_malformed_participant_id_is_refused(text):
    with pytest.raises(ValueError, match="not a Peppol participant id"):
        parse_participant_id(text)


# --- the arithmetic alone --------------------------------------------------------------------


def test_line_net_amount_divides_by_the_base_quantity_and_applies_allowances():
    # 12 x 4.99 / 10 = 5.988 -> 5.99; less 1.00 allowance, plus 0.50 charge = 5.49.
    assert calc.line_net_amount(
        D(12), D("4.99"), "EUR", base_quantity=D(10), allowances=[D("1.00")],
        charges=[D("0.50")],
    ) == D("5.49")


def test_rounding_is_half_up_and_symmetric_for_negative_amounts():
    assert calc.round_amount(D("2.345"), "EUR") == D("2.35")
    assert calc.round_amount(D("-2.345"), "EUR") == D("-2.35")
    assert calc.round_amount(D("1234.5"), "JPY") == D("1235")
    assert calc.round_amount(D("1.2345"), "KWD") == D("1.235")
    assert calc.vat_amount(D("74.70"), D(7), "EUR") == D("5.23")  # 5.229


def test_two_decimal_limit_of_en16931_amounts():
    assert calc.as_en16931_amount(D("12.340")) == D("12.34")
    assert str(calc.as_en16931_amount(D("12.340"))) == "12.34"
    assert calc.exceeds_amount_decimals(D("12.345"))
    assert not calc.exceeds_amount_decimals(D("1000"))


# --- every invoice built here passes the official validators ----------------------------------


@pytest.fixture(scope="session")
def validator():
    """The official rules, compiled once for the test session."""
    return validator_for(Settings.einvoice_rules_dir)


VALID_INVOICES = {
    "german_b2b": lambda: german(german_b2b(), buyer_reference="PO-4711"),
    "price_inclusive": lambda: german(price_inclusive(), prices_include_vat=True),
    "document_allowance": lambda: german(document_allowance()),
    "split_discount": lambda: german(split_discount(), line_vat_rates={1: D(19), 2: D(7)}),
    "jpy": lambda: build_einvoice(jpy_invoice(), buyer_endpoint=JAPANESE_ENDPOINT),
    "kwd": lambda: german(erp_invoice(
        [("Analytics Platform subscription", "1", "100.000", "100.000")],
        [("19", "100.000", "19.000")], "119.000", number="INV-2026-0049", currency="KWD",
    )),
    "reverse_charge": lambda: build_einvoice(reverse_charge(), buyer_endpoint=FRENCH_ENDPOINT),
    "intra_community": lambda: build_einvoice(
        reverse_charge(), buyer_endpoint=FRENCH_ENDPOINT, zero_rate_category="K",
        delivery_date=dt.date(2026, 2, 27),
    ),
    "rounding": lambda: german(erp_invoice(
        [("API calls, tier 1", "1", "10.04", "10.04"),
         ("API calls, tier 2", "1", "10.04", "10.04"),
         ("API calls, tier 3", "1", "10.04", "10.04")],
        [("19", "30.12", "5.73")], "35.85", number="INV-2026-0044",
    )),
    "credit_note": lambda: build_credit_note(
        credit_note(), preceding_invoice="INV-2026-0042",
        preceding_issue_date=dt.date(2026, 3, 2), buyer_endpoint=GERMAN_ENDPOINT,
        buyer_address=GERMAN_ADDRESS,
    ),
    "negative": lambda: german(negative_invoice()),
    "memo_and_prepaid": lambda: german(dataclasses.replace(
        german_b2b(), memo="Thank you for your order.", amount_paid=Money(D("388.93"), "EUR"),
    )),
}


@pytest.mark.parametrize("name", sorted(VALID_INVOICES))
def test_generated_ubl_passes_xsd_cen_and_peppol_rules(validator, name):
    einvoice = VALID_INVOICES[name]()
    xml = write_ubl(einvoice)

    report = validator.validate_ubl(xml, peppol=True)

    assert report.ok, report.summary()
    assert len(report.checked) == 3  # the XSD, the CEN rules and the Peppol rules all ran
    assert read_ubl(xml).totals == einvoice.totals


@pytest.mark.parametrize("name", sorted(VALID_INVOICES))
def test_generated_cii_passes_xsd_and_cen_rules(validator, name):
    einvoice = dataclasses.replace(
        VALID_INVOICES[name](), customization_id=EN16931_CUSTOMIZATION_ID, profile_id=None
    )
    xml = write_cii(einvoice)

    report = validator.validate_cii(xml)

    assert report.ok, report.summary()
    assert len(report.checked) == 2
    assert read_cii(xml).vat_breakdown == einvoice.vat_breakdown


def test_the_validators_reject_what_check_compliance_holds(validator):
    """The draft of a held reverse-charge invoice really fails the official rule."""
    no_vat = dataclasses.replace(FRENCH_BUYER, vat_id=None)
    with pytest.raises(EInvoiceNotCompliant) as held:
        build_einvoice(reverse_charge(no_vat), buyer_endpoint=FRENCH_ENDPOINT)

    report = validator.validate_ubl(write_ubl(held.value.einvoice), peppol=True)

    assert "BR-AE-02" in report.rules()


def test_check_compliance_recomputes_totals_and_vat_from_the_lines():
    einvoice = german(german_b2b())
    t = einvoice.totals

    tampered = dataclasses.replace(einvoice, totals=dataclasses.replace(t, payable=D("1388.94")))
    assert [p.rule for p in check_compliance(tampered)] == ["BR-CO-16"]

    first, second = einvoice.vat_breakdown
    wrong_vat = dataclasses.replace(
        einvoice, vat_breakdown=(dataclasses.replace(first, tax_amount=D("209.01")), second)
    )
    # 1100.00 x 19 % is 209.00 (BR-S-09), and 209.01 + 5.23 is not the 214.23 of BT-110.
    assert sorted(p.rule for p in check_compliance(wrong_vat)) == ["BR-CO-14", "BR-S-09"]


def test_warehouse_scales_are_stated_plainly():
    """The marts hold rates as 19.0000 and quantities and prices with six decimals."""
    doc = german_b2b()
    doc = dataclasses.replace(
        doc,
        lines=tuple(
            dataclasses.replace(
                line, quantity=line.quantity.quantize(D("0.000001")),
                unit_price=line.unit_price.quantize(D("0.000001")),
            )
            for line in doc.lines
        ),
        tax_breakdown=tuple(
            dataclasses.replace(tax, rate=tax.rate.quantize(D("0.0001")))
            for tax in doc.tax_breakdown
        ),
    )
    einvoice = german(doc)
    assert [(str(ln.quantity), str(ln.net_price), str(ln.vat_rate)) for ln in einvoice.lines] == [
        ("1", "800", "19"), ("2", "150", "19"), ("3", "24.9", "7"),
    ]
    assert [str(row.rate) for row in einvoice.vat_breakdown] == ["19", "7"]
