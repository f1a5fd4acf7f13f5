"""X12 810 invoices and credit memos for the two demo trading partners.

Every expected interchange below is written out by hand, segment by segment, with the SE01
count and the TDS amount worked out in the comment above it. Each generated interchange is
also read by pyx12 (BSD licensed, a test-only dependency), whose reader checks the envelope
independently of q2c: ISA width and delimiters, IEA/ISA, GE/GS and SE/ST control numbers
and the SE01, GE01 and IEA01 counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from pyx12.x12file import X12Reader

from q2c.documents.model import Buyer, InvoiceDocument, TaxBreakdown
from q2c.documents.model import InvoiceLine as ErpLine
from q2c.einvoice.build import build_credit_note, build_einvoice
from q2c.einvoice.model import (
    INVOICE,
    Address,
    AllowanceCharge,
    Delivery,
    EInvoice,
    Identifier,
    InvoiceLine,
    Item,
    Party,
    Period,
    Totals,
    VatBreakdown,
)
from q2c.money import Money
from q2c.settings import Seller
from q2c.x12 import (
    Controls,
    PartnerProfileError,
    X12Invalid,
    X12ValueError,
    load_partners,
    validate_x12,
    write_810,
)
from q2c.x12.syntax import format_n2, format_r

D = Decimal
CREATED = dt.datetime(2026, 3, 2, 14, 5)
PARTNERS = load_partners()
BIGBOX = PARTNERS["bigbox-retail"]
LAKESIDE = PARTNERS["lakeside-distribution"]

US_SELLER = Seller(
    name="Northwind Analytics Inc.", street="500 Market Street", postal_code="94105",
    city="San Francisco", country="US", vat_id="US941234567", email="ar@northwind.example",
    iban="", bic="", peppol_id="", phone="", timezone="America/Los_Angeles",
)
BIGBOX_ADDRESS = Address(line1="1 Retail Way", city="Bentonville", subdivision="US-AR",
                         postal_code="72712", country="US")
LAKESIDE_ADDRESS = Address(line1="200 Harbor Drive", city="Chicago", subdivision="IL",
                           postal_code="60601", country="US")


def pyx12_envelope(text: str) -> tuple[list[str], list[tuple]]:
    """The segment ids pyx12 reads and the envelope errors its reader reports."""
    reader = X12Reader(io.StringIO(text))
    ids = [segment.get_seg_id() for segment in reader]
    reader.cleanup()
    return ids, reader.pop_errors()


def segments(text: str, terminator: str) -> list[str]:
    return [line.strip("\n") for line in text.split(terminator) if line.strip("\n")]


# --- the 4010 invoice for the big-box retailer --------------------------------------------


def bigbox_invoice() -> EInvoice:
    """A US invoice with a ship-to store, a remit-to lockbox, a discount and freight.

    Lines: 12 x 24.95 = 299.40 and 3 x 150 = 450.00, sum 749.40; less the 10.00 discount,
    plus 25.00 freight: 764.40 taxable; sales tax 8.875 % of 764.40 = 67.8405 -> 67.84;
    total 764.40 + 67.84 = 832.24.
    """
    rate = D("8.875")
    return EInvoice(
        kind=INVOICE, number="INV-7", issue_date=dt.date(2026, 3, 2), type_code="380",
        currency="USD",
        seller=Party(
            name="Northwind Analytics Inc.", identifiers=(Identifier("080355581", "0060"),),
            address=Address(line1="500 Market Street", line2="Suite 400", city="San Francisco",
                            subdivision="CA", postal_code="94105", country="US"),
        ),
        buyer=Party(name="BigBox Stores Inc", identifiers=(Identifier("ACC-1042"),),
                    address=BIGBOX_ADDRESS),
        lines=(
            InvoiceLine(id="1", quantity=D(12), unit_code="C62", net_amount=D("299.40"),
                        net_price=D("24.95"), vat_category="S", vat_rate=rate,
                        item=Item(name="Analytics handbook", seller_id="NW-HB-01",
                                  standard_id=Identifier("012345678905", "0160"))),
            InvoiceLine(id="2", quantity=D(3), unit_code="HUR", net_amount=D("450.00"),
                        net_price=D("150.00"), vat_category="S", vat_rate=rate,
                        item=Item(name="Onboarding workshop",
                                  description="Half-day sessions on site")),
        ),
        vat_breakdown=(VatBreakdown("S", rate, D("764.40"), D("67.84")),),
        totals=Totals(line_total=D("749.40"), tax_exclusive=D("764.40"),
                      tax_inclusive=D("832.24"), payable=D("832.24"),
                      allowance_total=D("10.00"), charge_total=D("25.00"),
                      tax_total=D("67.84")),
        due_date=dt.date(2026, 4, 1),
        purchase_order_reference="PO-4711",
        sales_order_reference="SO-889",
        payee=Party(name="Northwind Lockbox",
                    address=Address(line1="PO Box 1000", city="Chicago", subdivision="IL",
                                    postal_code="60601", country="US")),
        delivery=Delivery(party_name="Store 0042", location_id=Identifier("0042"),
                          actual_date=dt.date(2026, 2, 27),
                          address=Address(line1="9 Main St", city="Austin", subdivision="TX",
                                          postal_code="78701", country="US")),
        allowances_charges=(
            AllowanceCharge(is_charge=False, amount=D("10.00"), vat_category="S",
                            vat_rate=rate, reason="Volume discount", reason_code="95"),
            AllowanceCharge(is_charge=True, amount=D("25.00"), vat_category="S",
                            vat_rate=rate, reason="Freight", reason_code="FC"),
        ),
    )


# ISA: 3 + 16 separators + 86 characters of fixed-width elements + terminator = 106.
BIGBOX_ISA = (
    "ISA*00*          *00*          *ZZ*NORTHWINDUS    *08*9254110060     "
    "*260302*1405*U*00401*000001042*0*P*>~"
)
# ST..SE: ST 1, BIG 2, REF 3, N1/N3/N4 seller 4-6, remit-to 7-9, bill-to 10-12, ship-to
# 13-15, ITD 16, DTM 17, IT1 18, PID 19, IT1 20, PID 21, PID 22, TDS 23, TXI 24, SAC 25,
# SAC 26, CTT 27, SE 28. TDS01 = 832.24 in implied decimals = 83224.
BIGBOX_810 = [
    BIGBOX_ISA[:-1],
    "GS*IN*NORTHWINDUS*9254110060*20260302*1405*77*X*004010VICS",
    "ST*810*0003",
    "BIG*20260302*INV-7**PO-4711***DI",
    "REF*VN*SO-889",
    "N1*SE*Northwind Analytics Inc.*1*080355581",
    "N3*500 Market Street*Suite 400",
    "N4*San Francisco*CA*94105*US",
    "N1*RI*Northwind Lockbox",
    "N3*PO Box 1000",
    "N4*Chicago*IL*60601*US",
    "N1*BT*BigBox Stores Inc*91*ACC-1042",
    "N3*1 Retail Way",
    "N4*Bentonville*AR*72712*US",
    "N1*ST*Store 0042*92*0042",
    "N3*9 Main St",
    "N4*Austin*TX*78701*US",
    "ITD*01*3****20260401*30",
    "DTM*011*20260227",
    "IT1*1*12*EA*24.95**VN*NW-HB-01*UP*012345678905",
    "PID*F****Analytics handbook",
    "IT1*2*3*HR*150",
    "PID*F****Onboarding workshop",
    "PID*F****Half-day sessions on site",
    "TDS*83224",
    "TXI*ST*67.84*.08875",
    "SAC*A*C310***1000**********Volume discount",
    "SAC*C*D240***2500**********Freight",
    "CTT*2",
    "SE*28*0003",
    "GE*1*77",
    "IEA*1*000001042",
]


def test_4010_invoice_for_the_big_box_retailer_is_the_hand_written_interchange():
    text = write_810(bigbox_invoice(), BIGBOX, Controls(isa=1042, gs=77, st=3),
                     created_at=CREATED)

    assert text == "".join(f"{segment}~\n" for segment in BIGBOX_810)
    first = text.split("\n")[0]
    assert first == BIGBOX_ISA and len(first) == 106
    assert validate_x12(text) == []
    ids, errors = pyx12_envelope(text)
    assert errors == []
    assert len(ids) == 32 and ids[0] == "ISA" and ids[-1] == "IEA"


# --- the 5010 invoice for the distributor, built from the ERP invoice ---------------------


def erp_document(number: str, buyer: Buyer, lines: list[tuple[str, str, str, str]],
                 tax: str, total: str) -> InvoiceDocument:
    """An issued US invoice as the ERP holds it; lines are (text, qty, price, amount)."""

    def usd(value: str) -> Money:
        return Money(D(value), "USD")

    subtotal = sum((D(amount) for *_, amount in lines), D(0))
    return InvoiceDocument(
        invoice_id=number.lower(), invoice_number=number, issue_date=dt.date(2026, 3, 2),
        due_date=dt.date(2026, 4, 1), currency="USD", language="en", locale="en_US",
        seller=US_SELLER, buyer=buyer,
        lines=tuple(ErpLine(index, text, D(qty), D(price), usd(amount))
                    for index, (text, qty, price, amount) in enumerate(lines, start=1)),
        tax_breakdown=(TaxBreakdown(D("6.25"), usd(str(subtotal)), usd(tax)),),
        subtotal=usd(str(subtotal)), discount=usd("0"), tax_total=usd(tax), total=usd(total),
        amount_paid=usd("0"), amount_credited=usd("0"), balance_due=usd(total),
        payment_term_days=30, payment_reference=number, account_key="ACC-2001",
    )


LAKESIDE_BUYER = Buyer(name="Lakeside Distribution LLC", country="US")
BIGBOX_BUYER = Buyer(name="BigBox Stores Inc", country="US")


def lakeside_invoice() -> EInvoice:
    # 1 x 800.00 + 2 x 150.00 = 1100.00; Illinois 6.25 % = 68.75; total 1168.75.
    doc = erp_document(
        "INV-2026-0101", LAKESIDE_BUYER,
        [("Analytics Platform subscription, March 2026", "1", "800.00", "800.00"),
         ("Onboarding workshop (days)", "2", "150.00", "300.00")],
        "68.75", "1168.75",
    )
    return build_einvoice(doc, US_SELLER, peppol=False, purchase_order="PO-88",
                          buyer_address=LAKESIDE_ADDRESS)


# ST..SE: ST 1, BIG 2, seller 3-5, remit-to (the seller) 6-8, bill-to 9-11, ITD 12,
# IT1 13, PID 14, IT1 15, PID 16, TDS 17, TXI 18, CTT 19, SE 20. TDS01 = 1168.75 -> 116875.
LAKESIDE_810 = [
    "ISA|00|          |00|          |01|080355581      |ZZ|LAKESIDEDIST   "
    "|260302|1405|!|00501|000000007|1|T|:",
    "GS|IN|080355581|LAKESIDE|20260302|1405|7|X|005010",
    "ST|810|0007",
    "BIG|20260302|INV-2026-0101||PO-88|||DI",
    "N1|SE|Northwind Analytics Inc.",
    "N3|500 Market Street",
    "N4|San Francisco||94105|US",
    "N1|RI|Northwind Analytics Inc.",
    "N3|500 Market Street",
    "N4|San Francisco||94105|US",
    "N1|BT|Lakeside Distribution LLC",
    "N3|200 Harbor Drive",
    "N4|Chicago|IL|60601|US",
    "ITD|01|3||||20260401|30",
    "IT1|1|1|EA|800",
    "PID|F||||Analytics Platform subscription, March 2026",
    "IT1|2|2|EA|150",
    "PID|F||||Onboarding workshop (days)",
    "TDS|116875",
    "TXI|ST|68.75|.0625",
    "CTT|2",
    "SE|20|0007",
    "GE|1|7",
    "IEA|1|000000007",
]


def test_5010_invoice_for_the_distributor_uses_its_delimiters_and_repetition_separator():
    text = write_810(lakeside_invoice(), LAKESIDE, Controls(7, 7, 7), created_at=CREATED)

    # The distributor's terminator is the newline itself, so no extra line break follows.
    assert text == "".join(f"{segment}\n" for segment in LAKESIDE_810)
    assert len(LAKESIDE_810[0]) + 1 == 106
    assert validate_x12(text) == []
    ids, errors = pyx12_envelope(text)
    assert errors == []
    assert len(ids) == 24


# --- credit memos ---------------------------------------------------------------------------


def credit_memo(buyer: Buyer, address: Address):
    # One workshop day credited: 1 x 150.00; 6.25 % = 9.375 -> 9.38; total 159.38.
    doc = erp_document("CM-2026-0007", buyer,
                       [("Onboarding workshop (days)", "1", "150.00", "150.00")],
                       "9.38", "159.38")
    return build_credit_note(doc, US_SELLER, preceding_invoice="INV-2026-0101",
                             peppol=False, purchase_order="PO-88", buyer_address=address)


# ST..SE: ST 1, BIG 2, REF*OI 3, seller 4-6, remit-to 7-9, bill-to 10-12, ITD 13, IT1 14,
# PID 15, TDS 16, TXI 17, CTT 18, SE 19. TDS01 = 159.38 -> 15938.
BIGBOX_CREDIT = [
    "ISA*00*          *00*          *ZZ*NORTHWINDUS    *08*9254110060     "
    "*260302*1405*U*00401*000001043*0*P*>",
    "GS*IN*NORTHWINDUS*9254110060*20260302*1405*78*X*004010VICS",
    "ST*810*0004",
    "BIG*20260302*CM-2026-0007**PO-88***CR",
    "REF*OI*INV-2026-0101",
    "N1*SE*Northwind Analytics Inc.",
    "N3*500 Market Street",
    "N4*San Francisco**94105*US",
    "N1*RI*Northwind Analytics Inc.",
    "N3*500 Market Street",
    "N4*San Francisco**94105*US",
    "N1*BT*BigBox Stores Inc",
    "N3*1 Retail Way",
    "N4*Bentonville*AR*72712*US",
    "ITD*01*3****20260401*30",
    "IT1*1*1*EA*150",
    "PID*F****Onboarding workshop (days)",
    "TDS*15938",
    "TXI*ST*9.38*.0625",
    "CTT*1",
    "SE*19*0004",
    "GE*1*78",
    "IEA*1*000001043",
]


def test_credit_memo_for_the_retailer_is_a_cr_810_citing_the_credited_invoice():
    text = write_810(credit_memo(BIGBOX_BUYER, BIGBOX_ADDRESS), BIGBOX,
                     Controls(1043, 78, 4), created_at=CREATED)

    assert text == "".join(f"{segment}~\n" for segment in BIGBOX_CREDIT)
    assert validate_x12(text) == []
    ids, errors = pyx12_envelope(text)
    assert errors == [] and len(ids) == 23


def test_credit_memo_for_a_partner_that_wants_negative_credits_negates_every_amount():
    partner = dataclasses.replace(LAKESIDE, negative_credit_amounts=True)
    text = write_810(credit_memo(LAKESIDE_BUYER, LAKESIDE_ADDRESS), partner,
                     Controls(8, 8, 8), created_at=CREATED)

    body = segments(text, "\n")
    assert body[3] == "BIG|20260302|CM-2026-0007||PO-88|||CR"
    assert body[4] == "REF|OI|INV-2026-0101"
    # -1 x 150 = -150.00, tax -9.38: TDS01 -159.38 -> -15938.
    assert [s for s in body if s.split("|")[0] in {"IT1", "TDS", "TXI", "CTT", "SE"}] == [
        "IT1|1|-1|EA|150",
        "TDS|-15938",
        "TXI|ST|-9.38|.0625",
        "CTT|1",
        "SE|19|0008",
    ]
    assert validate_x12(text) == []
    ids, errors = pyx12_envelope(text)
    assert errors == [] and len(ids) == 23


# --- values the 810 cannot carry ----------------------------------------------------------


@pytest.mark.parametrize(
    ("partner", "name", "message"),
    [
        (BIGBOX, "Smith*Jones", "invoice INV-7 buyer name contains the element separator '*'"),
        (BIGBOX, "Smith>Jones", "invoice INV-7 buyer name contains the component separator '>'"),
        (BIGBOX, "Smith~Jones", "invoice INV-7 buyer name contains the segment terminator '~'"),
        (BIGBOX, "Smith^Jones",
         "invoice INV-7 buyer name contains the repetition separator '^'"),
        (LAKESIDE, "Smith|Jones",
         "invoice INV-7 buyer name contains the element separator '|'"),
        (LAKESIDE, "Smith:Jones",
         "invoice INV-7 buyer name contains the component separator ':'"),
        (LAKESIDE, "Smith!", "invoice INV-7 buyer name contains the repetition separator '!'"),
        (LAKESIDE, "Smith\nJones",
         "invoice INV-7 buyer name contains the segment terminator '\\n'"),
    ],
)
def test_a_value_holding_a_delimiter_is_refused_naming_invoice_and_field(partner, name, message):
    invoice = bigbox_invoice()
    invoice = dataclasses.replace(invoice, buyer=dataclasses.replace(invoice.buyer, name=name))
    with pytest.raises(X12ValueError) as raised:
        write_810(invoice, dataclasses.replace(partner, required_segments=()),
                  Controls(1, 1, 1), created_at=CREATED)
    assert str(raised.value).startswith(message)


def test_a_delimiter_in_a_line_item_names_the_line():
    invoice = bigbox_invoice()
    line = invoice.lines[1]
    line = dataclasses.replace(line, item=dataclasses.replace(line.item, name="Workshop ~ day"))
    invoice = dataclasses.replace(invoice, lines=(invoice.lines[0], line))
    with pytest.raises(X12ValueError, match=r"^invoice INV-7 line 2 item name contains the "
                                            r"segment terminator '~'"):
        write_810(invoice, BIGBOX, Controls(1, 1, 1), created_at=CREATED)


def test_non_ascii_too_long_and_unmapped_values_are_refused_not_changed():
    invoice = bigbox_invoice()
    umlaut = dataclasses.replace(invoice, buyer=dataclasses.replace(invoice.buyer,
                                                                    name="Müller Stores"))
    with pytest.raises(X12ValueError, match="buyer name contains 'ü', outside the X12"):
        write_810(umlaut, BIGBOX, Controls(1, 1, 1), created_at=CREATED)

    long_number = dataclasses.replace(invoice, number="INV-2026-00000000000001")  # 23 chars
    with pytest.raises(X12ValueError, match="invoice number 'INV-2026-00000000000001' has 23 "
                                            "characters; the X12 element takes 1 to 22"):
        write_810(long_number, BIGBOX, Controls(1, 1, 1), created_at=CREATED)

    odd_unit = dataclasses.replace(
        invoice, lines=(dataclasses.replace(invoice.lines[0], unit_code="XYZ"),
                        invoice.lines[1]))
    with pytest.raises(X12ValueError, match="line 1 unit code 'XYZ' has no X12 unit"):
        write_810(odd_unit, BIGBOX, Controls(1, 1, 1), created_at=CREATED)


def test_a_segment_the_partner_requires_but_the_invoice_cannot_fill_is_an_error():
    partner = dataclasses.replace(BIGBOX, required_segments=("ITD", "N1*ST", "DTM"))
    with pytest.raises(X12ValueError, match="invoice INV-2026-0101: partner bigbox-retail "
                                            "requires N1[*]ST, DTM in every 810"):
        write_810(lakeside_invoice(), partner, Controls(1, 1, 1), created_at=CREATED)


def test_an_810_whose_total_does_not_add_up_is_held_back_with_its_findings():
    invoice = bigbox_invoice()
    # The ERP total claims one cent more than lines, charges and tax: 832.25, not 832.24.
    wrong = dataclasses.replace(
        invoice, totals=dataclasses.replace(invoice.totals, tax_inclusive=D("832.25")))
    with pytest.raises(X12Invalid) as raised:
        write_810(wrong, BIGBOX, Controls(1, 1, 1), created_at=CREATED)
    [finding] = raised.value.findings
    assert (finding.code, finding.segment, finding.position, finding.element) == (
        "tds-total", "TDS", 25, "TDS01"
    )
    assert "832.25" in finding.message and "832.24" in finding.message


def test_rounding_and_prices_per_base_quantity_still_add_up_to_tds():
    invoice = bigbox_invoice()
    # 10.00 per 3 units, 3 units: the unit price 3.333 gives 3 x 3.333 = 9.999 -> 10.00.
    per_three = InvoiceLine(id="3", quantity=D(3), unit_code="C62", net_amount=D("10.00"),
                            net_price=D("10.00"), base_quantity=D(3), vat_category="S",
                            vat_rate=D("8.875"), item=Item(name="Sticker pack"))
    # With the line: 764.40 + 10.00 = 774.40 taxable, tax 68.726 -> 68.73, total 843.13; the
    # ERP charged 843.14, so the rounding amount is 0.01.
    totals = dataclasses.replace(invoice.totals, line_total=D("759.40"),
                                 tax_exclusive=D("774.40"), tax_total=D("68.73"),
                                 tax_inclusive=D("843.13"), rounding=D("0.01"),
                                 payable=D("843.14"))
    invoice = dataclasses.replace(
        invoice, lines=(*invoice.lines, per_three), totals=totals,
        vat_breakdown=(VatBreakdown("S", D("8.875"), D("774.40"), D("68.73")),))
    text = write_810(invoice, BIGBOX, Controls(1, 1, 1), created_at=CREATED)

    body = segments(text, "~")
    assert "IT1*3*3*EA*3.333" in body
    assert body[-9:-3] == [
        "TDS*84314",
        "TXI*ST*68.73*.08875",
        "SAC*A*C310***1000**********Volume discount",
        "SAC*C*D240***2500**********Freight",
        "SAC*C*ZZZZ***1**********Rounding",
        "CTT*3",
    ]
    assert validate_x12(text) == []


def test_currency_contract_period_line_allowance_and_long_names_get_their_segments():
    invoice = bigbox_invoice()
    line = invoice.lines[1]
    name = ("Onboarding workshop for the analytics team with three half-day sessions on site "
            "in Austin, Texas")
    line = dataclasses.replace(
        line, net_amount=D("400.00"), item=dataclasses.replace(line.item, name=name),
        allowances_charges=(AllowanceCharge(is_charge=False, amount=D("50.00"),
                                            reason="Early booking"),))
    # Lines 299.40 + (450.00 - 50.00) = 699.40; less 10.00, plus 25.00: 714.40 taxable;
    # 8.875 % = 63.4030 -> 63.40; total 777.80.
    invoice = dataclasses.replace(
        invoice, currency="EUR", contract_reference="MSA-2024-17",
        period=Period(dt.date(2026, 3, 1), dt.date(2026, 3, 31)),
        lines=(invoice.lines[0], line),
        vat_breakdown=(VatBreakdown("S", D("8.875"), D("714.40"), D("63.40")),),
        totals=Totals(line_total=D("699.40"), tax_exclusive=D("714.40"),
                      tax_inclusive=D("777.80"), payable=D("777.80"),
                      allowance_total=D("10.00"), charge_total=D("25.00"),
                      tax_total=D("63.40")),
    )
    text = write_810(invoice, BIGBOX, Controls(1, 1, 1), created_at=CREATED)

    body = segments(text, "~")[2:-2]
    # ST 1, BIG 2, CUR 3, REF 4-5, four N1 loops 6-17, ITD 18, DTM 19-21, IT1 22, PID 23,
    # IT1 24, PID 25-27 (the 95-character name breaks after "site", at 79), SAC 28, TDS 29,
    # TXI 30, SAC 31-32, CTT 33, SE 34.
    assert body[:5] == [
        "ST*810*0001", "BIG*20260302*INV-7**PO-4711***DI", "CUR*SE*EUR",
        "REF*CT*MSA-2024-17", "REF*VN*SO-889",
    ]
    assert body[17:] == [
        "ITD*01*3****20260401*30",
        "DTM*011*20260227",
        "DTM*150*20260301",
        "DTM*151*20260331",
        "IT1*1*12*EA*24.95**VN*NW-HB-01*UP*012345678905",
        "PID*F****Analytics handbook",
        "IT1*2*3*HR*150",
        "PID*F****Onboarding workshop for the analytics team with three half-day sessions "
        "on site",
        "PID*F****in Austin, Texas",
        "PID*F****Half-day sessions on site",
        "SAC*A*C310***5000**********Early booking",
        "TDS*77780",
        "TXI*ST*63.4*.08875",
        "SAC*A*C310***1000**********Volume discount",
        "SAC*C*D240***2500**********Freight",
        "CTT*2",
        "SE*34*0001",
    ]
    assert validate_x12(text) == []


def test_x12_numbers_are_written_without_float_or_padding():
    assert format_r(D("15.50")) == "15.5"
    assert format_r(D("100.00")) == "100"
    assert format_r(D("0.0125")) == ".0125"
    assert format_r(D("-0.5")) == "-.5"
    assert format_r(D("0.00")) == "0"
    assert format_n2(D("832.24")) == "83224"
    assert format_n2(D("-5")) == "-500"
    assert format_n2(D("1500")) == "150000"  # whole yen still carry two implied decimals
    with pytest.raises(ValueError, match="more than two decimals"):
        format_n2(D("1.234"))
    with pytest.raises(ValueError, match="at most 10"):
        format_r(D("12345678901"), max_digits=10)


# --- the partner profiles ------------------------------------------------------------------


def test_the_demo_profiles_load_with_their_versions_suffixes_and_delimiters():
    assert set(PARTNERS) == {"bigbox-retail", "lakeside-distribution"}
    assert (BIGBOX.version, BIGBOX.gs_version, BIGBOX.isa_version) == (
        "004010", "004010VICS", "00401")
    assert (BIGBOX.element_separator, BIGBOX.component_separator,
            BIGBOX.segment_terminator, BIGBOX.line_break) == ("*", ">", "~", True)
    assert BIGBOX.required_segments == ("ITD", "N1*BT", "N1*RI", "CTT")
    assert (LAKESIDE.version, LAKESIDE.gs_version, LAKESIDE.isa_version) == (
        "005010", "005010", "00501")
    assert (LAKESIDE.element_separator, LAKESIDE.component_separator,
            LAKESIDE.repetition_separator, LAKESIDE.segment_terminator,
            LAKESIDE.line_break) == ("|", ":", "!", "\n", False)


GOOD_PROFILE = """
partners:
  acme:
    version: "004010"
    sender_qualifier: ZZ
    sender_id: NORTHWINDUS
    receiver_qualifier: ZZ
    receiver_id: ACME
    gs_sender: NORTHWINDUS
    gs_receiver: ACME
"""


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ("    component_separator: '*'\n", "component_separator",
         "'*' is also the element separator"),
        ("    segment_terminator: 'X'\n", "segment_terminator", "must not be a letter, digit"),
        ("    element_separator: '**'\n", "element_separator", "exactly one character"),
        ("    version: 4010\n", "version", "'4010' is not supported"),
        ("    usage: Q\n", "usage", "ISA15 is P"),
        ("    colour: blue\n", "colour", "unknown field"),
        ("    required_segments: [N1-BT]\n", "required_segments", "'N1-BT'"),
        ("    sender_id: NORTHWIND-US-DIVISION\n", "sender_id", "1 to 15"),
    ],
)
def test_a_bad_profile_names_file_partner_and_field(tmp_path: Path, extra, field, problem):
    text = GOOD_PROFILE
    key = extra.split(":")[0].strip()
    text = "\n".join(line for line in text.splitlines() if line.strip().split(":")[0] != key)
    path = tmp_path / "partners.yaml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    with pytest.raises(PartnerProfileError) as raised:
        load_partners(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: partner 'acme', field '{field}':")
    assert problem in message


def test_a_profile_without_a_required_field_is_refused(tmp_path: Path):
    path = tmp_path / "partners.yaml"
    path.write_text(GOOD_PROFILE.replace("    receiver_id: ACME\n", ""), encoding="utf-8")
    with pytest.raises(PartnerProfileError, match="partner 'acme', field 'receiver_id': "
                                                  "missing"):
        load_partners(path)
    path.write_text(GOOD_PROFILE, encoding="utf-8")
    acme = load_partners(path)["acme"]
    assert (acme.gs_version, acme.repetition_separator, acme.ack_requested) == (
        "004010", "^", True)
