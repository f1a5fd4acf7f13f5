"""ANSI X12 810 invoices from the EN 16931 invoice model.

The canonical `EInvoice` already holds what the ERP issued (lines, allowances and charges,
taxes, totals); the 810 states the same figures in X12, in the segment order of the 810
table in both 4010 and 5010:

    header   BIG, CUR (not USD), REF, N1 loops (SE seller, RI remit-to: the payee or
             else the seller, BT bill-to, ST ship-to when the delivery names a place; each
             with N3/N4), ITD terms, DTM dates (011 delivered, 150/151 service period)
    detail   per line: IT1 (quantity, unit, unit price, product ids), PID*F description,
             SAC line allowances and charges
    summary  TDS, TXI per tax rate, SAC document allowances and charges, CTT

Mapping choices, where the standards leave room:

- BIG07 is DI (debit invoice) for an invoice and CR (credit memo) for a credit note, which
  also names the invoices it credits in REF*OI. A credit memo states positive amounts
  unless the partner's profile sets `negative_credit_amounts`, which negates quantities
  (IT102), taxes (TXI02), allowances and charges (SAC05) and the total (TDS01).
- TDS01 is the invoice amount in N2 (implied two decimals): lines plus charges less
  allowances plus tax (EN 16931 BT-112), plus any rounding the ERP applied (BT-114), which
  is stated as its own SAC so the lines, charges and taxes still add up to TDS01. Amounts
  already paid (BT-113) do not reduce it: the 810 is the invoice, not a statement.
- TXI01 is ST (sales tax) for a US seller, GS for a Canadian one and VA (value added tax)
  otherwise; TXI03 is the rate as a decimal fraction (8.875 % is .08875), as the X12 data
  element dictionary defines element 954; exempt categories set TXI06 to 1.
- Party ids (N103/N104): D-U-N-S (ISO 6523 0060) as 1, GLN (0088) as UL; an id without a
  scheme is the partner's number for us or for its location (92, assigned by buyer) for
  the seller, remit-to and ship-to, and our customer number (91, assigned by seller) for
  the bill-to party.
- Product ids (IT106..): VN the seller's item number, BP the buyer's, and a GTIN (0160) as
  UP (12 digits), EN (13) or UK (14).
- Units: UN/ECE Recommendation 20 codes are mapped to X12 unit codes (C62 to EA, HUR to
  HR, ...); an unmapped unit is refused rather than guessed.

A value is never changed to fit: one that holds a delimiter of the partner, a character
outside printable ASCII, or more characters than its element allows raises
`X12ValueError` naming the invoice and the field. The finished interchange is checked
with `validate_x12`; one with findings raises `X12Invalid` carrying them, so it is held
back instead of sent.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from decimal import Decimal

from q2c.einvoice.model import AllowanceCharge, EInvoice, Identifier, InvoiceLine, Party
from q2c.x12.control import Controls
from q2c.x12.envelope import EnvelopeOptions, Parties, interchange
from q2c.x12.profiles import TradingPartner
from q2c.x12.syntax import Delimiters, format_date8, format_n2, format_r, round_cents
from q2c.x12.validate import Finding, validate_x12

log = logging.getLogger(__name__)

INVOICE_TYPE = "DI"
CREDIT_MEMO_TYPE = "CR"
EXEMPT_CATEGORIES = frozenset({"E", "AE", "K", "G", "O"})

# UN/ECE Recommendation 20 unit code -> X12 data element 355 unit or basis for measurement.
UNIT_CODES = {
    "C62": "EA", "EA": "EA", "H87": "PC", "XPP": "PC", "NAR": "EA",
    "HUR": "HR", "MIN": "MJ", "DAY": "DA", "WEE": "WK", "MON": "MO", "ANN": "YR",
    "KGM": "KG", "GRM": "GR", "LBR": "LB", "ONZ": "OZ", "TNE": "TN",
    "MTR": "MR", "CMT": "CM", "FOT": "FT", "INH": "IN", "YRD": "YD",
    "MTK": "SM", "FTK": "SF", "LTR": "LT", "GLL": "GA",
    "XBX": "BX", "XCS": "CA", "XCT": "CT", "XPK": "PK", "XPX": "PX", "XRO": "RL",
    "DZN": "DZ", "PR": "PR", "SET": "SET",
}
# ISO 6523 ICD of a party id -> N103 identification code qualifier.
PARTY_ID_QUALIFIERS = {"0060": "1", "0088": "UL"}
# UNCL 7161 charge reason code -> X12 1300 service, promotion, allowance or charge code.
CHARGE_CODES = {"FC": "D240", "ABK": "D240"}
DISCOUNT_CODE = "C310"
MUTUALLY_DEFINED = "ZZZZ"
TAX_TYPES = {"US": "ST", "CA": "GS"}


class X12ValueError(ValueError):
    """An invoice value the 810 cannot carry as it is; the message names invoice and field."""


class X12Invalid(X12ValueError):
    """The written 810 failed q2c's own validation; `findings` says where."""

    def __init__(self, invoice_number: str, findings: Sequence[Finding]):
        self.invoice_number = invoice_number
        self.findings = tuple(findings)
        detail = "; ".join(
            f"{f.code} at segment {f.position} {f.element or f.segment}: {f.message}"
            for f in self.findings
        )
        super().__init__(f"invoice {invoice_number}: the X12 810 is held back: {detail}")


def write_810(
    invoice: EInvoice,
    partner: TradingPartner,
    controls: Controls,
    *,
    created_at: dt.datetime,
) -> str:
    """The X12 810 interchange of `invoice` for `partner`.

    Args:
        invoice: The EN 16931 invoice or credit note (see `q2c.einvoice.build`).
        partner: The trading partner's profile (version, ids, delimiters, required segments).
        controls: ISA13, GS06 and ST02, from `ControlNumbers.allocate`.
        created_at: When the interchange is made: ISA09/10 and GS04/05, as given.

    Raises:
        X12ValueError: A value the 810 cannot carry, or a segment the partner requires that
            the invoice cannot fill; the message names the invoice and the field.
        X12Invalid: The finished 810 fails `validate_x12`; `.findings` lists why.
    """
    body = _Body(invoice, partner).segments()
    _check_required(invoice, partner, body)
    delimiters = Delimiters(
        partner.element_separator, partner.component_separator,
        partner.segment_terminator,
        partner.repetition_separator if partner.version >= "005010" else None,
    )
    text = interchange(
        "810", body,
        functional_id="IN",
        parties=Parties(partner.sender_qualifier, partner.sender_id,
                        partner.receiver_qualifier, partner.receiver_id,
                        partner.gs_sender, partner.gs_receiver),
        options=EnvelopeOptions(partner.isa_version, partner.gs_version, delimiters,
                                partner.usage, partner.ack_requested, partner.line_break),
        controls=controls,
        created_at=created_at,
    )
    findings = validate_x12(text)
    if findings:
        log.warning("invoice %s: X12 810 for %s held back with %d findings",
                    invoice.number, partner.name, len(findings))
        raise X12Invalid(invoice.number, findings)
    log.info("invoice %s: X12 810 for %s, interchange %09d, %d segments",
             invoice.number, partner.name, controls.isa, len(body) + 2)
    return text


class _Body:
    """The segments between ST and SE for one invoice and partner."""

    def __init__(self, invoice: EInvoice, partner: TradingPartner):
        self.invoice = invoice
        self.partner = partner
        self.sign = Decimal(-1) if (
            invoice.is_credit_note and partner.negative_credit_amounts
        ) else Decimal(1)
        self.out: list[list[str]] = []

    def segments(self) -> list[list[str]]:
        self._header()
        for line in self.invoice.lines:
            self._line(line)
        self._summary()
        return self.out

    # --- values -------------------------------------------------------------------------

    def text(self, label: str, value: str | None, max_len: int, min_len: int = 1) -> str:
        """`value` checked against the partner's delimiters and the element's length."""
        if value is None:
            return ""
        value = value.strip()
        if not value:
            return ""
        number = self.invoice.number
        for name, char in self.partner.delimiters.items():
            if char in value:
                raise X12ValueError(
                    f"invoice {number} {label} contains the {name} {char!r}; X12 cannot "
                    f"carry it for partner {self.partner.name}: change the value at its "
                    "source or agree another delimiter with the partner"
                )
        bad = next((ch for ch in value if not (ch.isascii() and ch.isprintable())), None)
        if bad is not None:
            raise X12ValueError(
                f"invoice {number} {label} contains {bad!r}, outside the X12 character set "
                "(printable ASCII); write the value in plain ASCII at its source"
            )
        if not min_len <= len(value) <= max_len:
            raise X12ValueError(
                f"invoice {number} {label} {value!r} has {len(value)} characters; the X12 "
                f"element takes {min_len} to {max_len}: shorten or complete it at its source"
            )
        return value

    def amount_r(self, label: str, value: Decimal, max_digits: int) -> str:
        try:
            return format_r(value, max_digits=max_digits)
        except ValueError as exc:
            raise X12ValueError(f"invoice {self.invoice.number} {label}: {exc}") from None

    def amount_n2(self, label: str, value: Decimal) -> str:
        try:
            return format_n2(value, max_digits=15)
        except ValueError as exc:
            raise X12ValueError(f"invoice {self.invoice.number} {label}: {exc}") from None

    # --- header -------------------------------------------------------------------------

    def _header(self) -> None:
        inv = self.invoice
        transaction_type = CREDIT_MEMO_TYPE if inv.is_credit_note else INVOICE_TYPE
        self.out.append([
            "BIG", format_date8(inv.issue_date), self.text("invoice number", inv.number, 22),
            "", self.text("purchase order", inv.purchase_order_reference, 22), "", "",
            transaction_type,
        ])
        if inv.currency.upper() != "USD":
            self.out.append(["CUR", "SE", self.text("currency", inv.currency.upper(), 3, 3)])
        for preceding in inv.preceding_invoices:
            self.out.append(["REF", "OI", self.text("credited invoice number",
                                                     preceding.number, 30)])
        for qualifier, label, value in (
            ("CT", "contract reference", inv.contract_reference),
            ("VN", "sales order reference", inv.sales_order_reference),
            ("JB", "project reference", inv.project_reference),
        ):
            if value:
                self.out.append(["REF", qualifier, self.text(label, value, 30)])

        self._party("SE", "seller", inv.seller, "92")
        self._party("RI", "remit-to", inv.payee or inv.seller, "92")
        self._party("BT", "buyer", inv.buyer, "91")
        delivery = inv.delivery
        if delivery and (delivery.party_name or delivery.address or delivery.location_id):
            ship_to = Party(
                name=delivery.party_name or inv.buyer.name,
                identifiers=(delivery.location_id,) if delivery.location_id else (),
                address=delivery.address,
            )
            self._party("ST", "ship-to", ship_to, "92")

        if inv.due_date is not None:
            net_days = (inv.due_date - inv.issue_date).days
            self.out.append(["ITD", "01", "3", "", "", "", format_date8(inv.due_date),
                             str(net_days) if net_days >= 0 else ""])
        if delivery and delivery.actual_date:
            self.out.append(["DTM", "011", format_date8(delivery.actual_date)])
        if inv.period and inv.period.start:
            self.out.append(["DTM", "150", format_date8(inv.period.start)])
        if inv.period and inv.period.end:
            self.out.append(["DTM", "151", format_date8(inv.period.end)])

    def _party(self, code: str, label: str, party: Party, default_qualifier: str) -> None:
        qualifier, identifier = "", ""
        found = _party_id(party)
        if found is not None:
            qualifier = PARTY_ID_QUALIFIERS.get(found.scheme or "", default_qualifier)
            identifier = self.text(f"{label} id", found.value, 80, 2)
        name = self.text(f"{label} name", party.name, 60)
        if not name:
            raise X12ValueError(f"invoice {self.invoice.number} {label} name is empty; N1 "
                                "needs a name")
        self.out.append(["N1", code, name, qualifier if identifier else "", identifier])
        address = party.address
        if address is None:
            return
        streets = [self.text(f"{label} address line {n}", value, 55)
                   for n, value in enumerate((address.line1, address.line2, address.line3), 1)]
        streets = [street for street in streets if street]
        for start in range(0, len(streets), 2):
            self.out.append(["N3", *streets[start:start + 2]])
        state = address.subdivision or ""
        if address.country and state.upper().startswith(address.country.upper() + "-"):
            state = state[len(address.country) + 1:]  # ISO 3166-2 "US-NY" is N402 "NY"
        n4 = [
            "N4",
            self.text(f"{label} city", address.city, 30, 2),
            self.text(f"{label} state or province", state, 2, 2),
            self.text(f"{label} postal code", address.postal_code, 15, 3),
            self.text(f"{label} country", address.country, 3, 2),
        ]
        if any(n4[1:]):
            self.out.append(n4)

    # --- detail -------------------------------------------------------------------------

    def _line(self, line: InvoiceLine) -> None:
        where = f"line {line.id}"
        unit = UNIT_CODES.get((line.unit_code or "").upper())
        if unit is None:
            raise X12ValueError(
                f"invoice {self.invoice.number} {where} unit code {line.unit_code!r} has no "
                f"X12 unit of measure in q2c; known codes are {', '.join(sorted(UNIT_CODES))}"
            )
        price = self._unit_price(line, where)
        it1 = [
            "IT1", self.text(f"{where} id", line.id, 20),
            self.amount_r(f"{where} quantity", self.sign * line.quantity, 10),
            unit, self.amount_r(f"{where} unit price", price, 17), "",
        ]
        item = line.item
        ids = [("VN", "seller item id", item.seller_id), ("BP", "buyer item id", item.buyer_id)]
        gtin = _gtin_qualifier(item.standard_id)
        if gtin:
            ids.append((gtin, "GTIN", item.standard_id.value))
        for qualifier, label, value in ids:
            if value:
                it1 += [qualifier, self.text(f"{where} {label}", value, 48)]
        self.out.append(it1)

        texts = [item.name] + ([item.description] if item.description else [])
        for label, value in zip(("item name", "item description"), texts, strict=False):
            for chunk in _chunks(self.text(f"{where} {label}", value, 10_000), 80):
                self.out.append(["PID", "F", "", "", "", chunk])
        for charge in line.allowances_charges:
            self._sac(charge, f"{where} {'charge' if charge.is_charge else 'allowance'}")

    def _unit_price(self, line: InvoiceLine, where: str) -> Decimal:
        """IT104 is a price per unit; EN 16931 may state it per a base quantity."""
        base = line.base_quantity
        if base is None or base == 1:
            return line.net_price
        if base <= 0:
            raise X12ValueError(f"invoice {self.invoice.number} {where} base quantity {base} "
                                "is not positive")
        exact = line.net_price / base
        target = round_cents(line.quantity * exact)
        for decimals in range(2, 11):
            price = exact.quantize(Decimal(1).scaleb(-decimals))
            if price * base == line.net_price or round_cents(line.quantity * price) == target:
                return price.normalize()
        raise X12ValueError(
            f"invoice {self.invoice.number} {where} price {line.net_price} per "
            f"{base} units has no unit price that X12 can state within ten decimals"
        )

    # --- summary ------------------------------------------------------------------------

    def _summary(self) -> None:
        inv = self.invoice
        totals = inv.totals
        total = totals.tax_inclusive + (totals.rounding or Decimal(0))
        self.out.append(["TDS", self.amount_n2("total amount (TDS01)", self.sign * total)])
        tax_type = TAX_TYPES.get((inv.seller.address and inv.seller.address.country) or "",
                                 "VA")
        for row in inv.vat_breakdown:
            label = f"tax {row.category} {row.rate}"
            txi = [
                "TXI", tax_type,
                self.amount_r(f"{label} amount", self.sign * row.tax_amount, 18),
                "" if row.rate is None else self.amount_r(f"{label} rate", row.rate / 100, 10),
            ]
            if row.category in EXEMPT_CATEGORIES:
                txi += ["", "", "1"]
            self.out.append(txi)
        for charge in inv.allowances_charges:
            self._sac(charge, "document charge" if charge.is_charge else "document allowance")
        if totals.rounding:
            self._sac(AllowanceCharge(is_charge=totals.rounding > 0, amount=abs(totals.rounding),
                                      reason="Rounding"), "rounding")
        self.out.append(["CTT", str(len(inv.lines))])

    def _sac(self, item: AllowanceCharge, label: str) -> None:
        if item.is_charge:
            code = CHARGE_CODES.get(item.reason_code or "", MUTUALLY_DEFINED)
        else:
            code = DISCOUNT_CODE
        reason = self.text(f"{label} reason", item.reason, 80) or (
            "Charge" if item.is_charge else "Discount"
        )
        self.out.append([
            "SAC", "C" if item.is_charge else "A", code, "", "",
            self.amount_n2(f"{label} amount", self.sign * item.amount),
            *([""] * 9), reason,
        ])


def _check_required(invoice: EInvoice, partner: TradingPartner, body: list[list[str]]) -> None:
    """Every segment the partner's guide requires must be in the 810."""
    missing = []
    for spec in partner.required_segments:
        seg_id, _, qualifier = spec.partition("*")
        if not any(seg[0] == seg_id and (not qualifier or (len(seg) > 1 and seg[1] == qualifier))
                   for seg in body):
            missing.append(spec)
    if missing:
        raise X12ValueError(
            f"invoice {invoice.number}: partner {partner.name} requires {', '.join(missing)} "
            "in every 810, and this invoice has no data for it (for example a ship-to party "
            "for N1*ST, a delivery date for DTM, a due date for ITD); add it to the invoice "
            "or change the partner's required_segments"
        )


def _party_id(party: Party) -> Identifier | None:
    if party.identifiers:
        return party.identifiers[0]
    return party.legal_id


def _gtin_qualifier(standard_id: Identifier | None) -> str:
    """UP, EN or UK for a GTIN (ISO 6523 0160) of 12, 13 or 14 digits, else ""."""
    if standard_id is None or standard_id.scheme != "0160":
        return ""
    return {12: "UP", 13: "EN", 14: "UK"}.get(len(standard_id.value), "")


def _chunks(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` characters, broken at spaces where possible."""
    pieces, rest = [], text
    while len(rest) > size:
        cut = rest.rfind(" ", 0, size + 1)
        cut = cut if cut > 0 else size
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces
