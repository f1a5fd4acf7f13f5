"""Build invoice documents from the core marts of the warehouse.

Reads `core.fct_invoices`, `core.fct_invoice_lines`, `core.fct_invoice_tax_lines` and
`core.dim_accounts`. Amounts are taken as the ERP issued them: the document prints the
invoice, it does not recompute it. An invoice that cannot be printed (no number, no
currency, no total, no account) is rejected with the table and field that is wrong, and the
other invoices of the batch go on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import duckdb

from q2c.content.formatting import parse_locale
from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.money import Money, is_iso_currency, money_sum, to_decimal
from q2c.settings import Seller

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"

_INVOICES_SQL = """
select
    i.invoice_id, i.invoice_number, i.account_key, i.issue_date, i.due_date, i.currency,
    i.subtotal_amount, i.discount_amount, i.tax_amount, i.total_amount, i.paid_amount,
    i.credited_amount, i.balance_amount, i.computed_balance_amount,
    i.billing_email as invoice_email, i.customer_memo,
    a.account_key as account_found, a.account_name, a.billing_contact_name,
    a.billing_street, a.billing_city, a.billing_postal_code, a.billing_region,
    a.billing_country_code, a.country_code, a.vat_id, a.language, a.locale,
    a.billing_email as account_email, a.payment_term_days, a.segment
from core.fct_invoices as i
left join core.dim_accounts as a on a.account_key = i.account_key
{where}
order by i.issue_date, i.invoice_number, i.invoice_id
"""

_LINES_SQL = """
select invoice_id, line_index, line_type, item_name, description, quantity, unit_price,
    amount, currency
from core.fct_invoice_lines
{where}
order by invoice_id, line_index
"""

_TAX_LINES_SQL = """
select invoice_id, line_index, tax_percent, taxable_amount, tax_amount, currency
from core.fct_invoice_tax_lines
{where}
order by invoice_id, line_index
"""

# Countries that write "City, Region Postal code" on one line (USPS, Canada Post,
# Australia Post); most of Europe writes "Postal code City" and prints no region.
_CITY_FIRST = {"US", "CA", "AU"}


class InvoiceDataError(ValueError):
    """A value in the marts that keeps an invoice from being printed."""

    def __init__(self, table: str, invoice_id: str, field_name: str, reason: str):
        super().__init__(f"{table}, invoice `{invoice_id}`, field `{field_name}`: {reason}")
        self.table = table
        self.invoice_id = invoice_id
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class RejectedInvoice:
    """An invoice left out of a batch, and why (for the run report and quarantine)."""

    invoice_id: str
    invoice_number: str | None
    table: str
    field: str
    reason: str


@dataclass
class LoadResult:
    documents: list[InvoiceDocument] = field(default_factory=list)
    rejected: list[RejectedInvoice] = field(default_factory=list)


def load_invoice_documents(
    conn: duckdb.DuckDBPyConnection, invoice_ids: list[str] | None, seller: Seller
) -> list[InvoiceDocument]:
    """Build the documents of the given invoices (all invoices when `invoice_ids` is None).

    Invoices that cannot be printed are logged and left out; use `load_invoice_batch()` to
    get them back as `RejectedInvoice` rows.
    """
    return load_invoice_batch(conn, invoice_ids, seller).documents


def load_invoice_batch(
    conn: duckdb.DuckDBPyConnection, invoice_ids: Sequence[str] | None, seller: Seller
) -> LoadResult:
    """Build documents for a batch and report every invoice that could not be built."""
    ids = None if invoice_ids is None else sorted({str(i) for i in invoice_ids})
    invoices = _query(conn, _INVOICES_SQL, "i.invoice_id", ids)
    lines = _group(_query(conn, _LINES_SQL, "invoice_id", ids))
    tax_lines = _group(_query(conn, _TAX_LINES_SQL, "invoice_id", ids))

    result = LoadResult()
    for row in invoices:
        invoice_id = str(row["invoice_id"])
        try:
            document = _document(
                row, lines.get(invoice_id, []), tax_lines.get(invoice_id, []), seller
            )
        except InvoiceDataError as exc:
            log.warning("invoice %s not built: %s", invoice_id, exc)
            result.rejected.append(
                RejectedInvoice(
                    invoice_id, row.get("invoice_number"), exc.table, exc.field, exc.reason
                )
            )
            continue
        result.documents.append(document)

    found = {str(row["invoice_id"]) for row in invoices}
    for missing in [i for i in (ids or []) if i not in found]:
        log.warning("invoice %s not built: not in core.fct_invoices", missing)
        result.rejected.append(
            RejectedInvoice(missing, None, "core.fct_invoices", "invoice_id", "no such invoice")
        )
    log.info("built %d invoice documents, rejected %d", len(result.documents), len(result.rejected))
    return result


def _query(
    conn: duckdb.DuckDBPyConnection, sql: str, id_column: str, ids: list[str] | None
) -> list[dict]:
    if ids is None:
        cursor = conn.execute(sql.format(where=""))
    else:
        where = f"where {id_column} in (select unnest(?::varchar[]))"
        cursor = conn.execute(sql.format(where=where), [ids])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _group(rows: Iterable[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[str(row["invoice_id"])].append(row)
    return grouped


def _document(
    row: dict, line_rows: list[dict], tax_rows: list[dict], seller: Seller
) -> InvoiceDocument:
    invoice_id = str(row["invoice_id"])

    def fail(field_name: str, reason: str, table: str = "core.fct_invoices"):
        return InvoiceDataError(table, invoice_id, field_name, reason)

    for name in ("invoice_number", "issue_date", "currency", "total_amount"):
        if row[name] is None:
            raise fail(name, "is empty; the invoice cannot be printed without it")
    currency = str(row["currency"]).strip().upper()
    if not is_iso_currency(currency):
        raise fail("currency", f"`{row['currency']}` is not an ISO 4217 currency code")
    if row["account_found"] is None or not row["account_name"]:
        raise fail("account_key", "has no account with a name in core.dim_accounts")

    def money(value: object) -> Money:
        return Money(Decimal(0) if value is None else value, currency)

    lines = tuple(_line(line, currency, invoice_id) for line in line_rows)
    taxes = _tax_breakdown(tax_rows, currency, invoice_id)
    items = [line.amount for line in lines if line.kind == "item"]

    total = money(row["total_amount"])
    paid, credited = money(row["paid_amount"]), money(row["credited_amount"])
    subtotal = (
        money(row["subtotal_amount"])
        if row["subtotal_amount"] is not None
        else money_sum(items, currency)
    )
    tax_total = (
        money(row["tax_amount"])
        if row["tax_amount"] is not None
        else money_sum([tax.tax for tax in taxes], currency)
    )
    balance = row["balance_amount"]
    if balance is None:
        balance = row["computed_balance_amount"]
    balance_due = money(balance) if balance is not None else total - paid - credited

    language, locale = _language_and_locale(row)
    issue_date: dt.date = row["issue_date"]
    return InvoiceDocument(
        invoice_id=invoice_id,
        invoice_number=str(row["invoice_number"]),
        issue_date=issue_date,
        due_date=row["due_date"] or issue_date,
        currency=currency,
        language=language,
        locale=locale,
        seller=seller,
        buyer=_buyer(row),
        lines=lines,
        tax_breakdown=taxes,
        subtotal=subtotal,
        discount=Money(abs(money(row["discount_amount"]).amount), currency),
        tax_total=tax_total,
        total=total,
        amount_paid=paid,
        amount_credited=credited,
        balance_due=balance_due,
        payment_term_days=(
            int(row["payment_term_days"]) if row["payment_term_days"] is not None else None
        ),
        payment_reference=str(row["invoice_number"]),
        memo=(row["customer_memo"] or None),
        account_key=row["account_key"],
        segment=row["segment"],
    )


def _line(row: dict, currency: str, invoice_id: str) -> InvoiceLine:
    table = "core.fct_invoice_lines"
    where = f"line {row['line_index']}"
    if row["line_index"] is None:
        raise InvoiceDataError(table, invoice_id, "line_index",
                               "a line has no index that is a whole number")
    if row["amount"] is None:
        raise InvoiceDataError(table, invoice_id, "amount", f"{where} has no amount")
    if row["currency"] and str(row["currency"]).strip().upper() != currency:
        raise InvoiceDataError(
            table,
            invoice_id,
            "currency",
            f"{where} is in {row['currency']} but the invoice is in {currency}",
        )
    kind = "discount" if row["line_type"] == "discount" else "item"
    description = row["description"] or row["item_name"] or ""
    item_name = row["item_name"] if row["item_name"] != description else None
    return InvoiceLine(
        index=int(row["line_index"]),
        description=str(description),
        quantity=to_decimal(row["quantity"]) if row["quantity"] is not None else None,
        unit_price=to_decimal(row["unit_price"]) if row["unit_price"] is not None else None,
        amount=Money(row["amount"], currency),
        kind=kind,
        item_name=item_name,
    )


def _tax_breakdown(rows: list[dict], currency: str, invoice_id: str) -> tuple[TaxBreakdown, ...]:
    """One breakdown row per tax rate (EN 16931 asks for one VAT breakdown per rate)."""
    by_rate: dict[Decimal | None, list[Money]] = {}
    for row in rows:
        if row["tax_amount"] is None:
            raise InvoiceDataError(
                "core.fct_invoice_tax_lines",
                invoice_id,
                "tax_amount",
                f"tax line {row['line_index']} has no amount",
            )
        rate = None if row["tax_percent"] is None else to_decimal(row["tax_percent"])
        taxable, tax = by_rate.setdefault(rate, [Money.zero(currency), Money.zero(currency)])
        by_rate[rate] = [
            taxable + Money(row["taxable_amount"] or 0, currency),
            tax + Money(row["tax_amount"], currency),
        ]
    return tuple(
        TaxBreakdown(rate=rate, taxable=taxable, tax=tax)
        for rate, (taxable, tax) in sorted(
            by_rate.items(), key=lambda item: (item[0] is None, item[0] or 0)
        )
    )


def _buyer(row: dict) -> Buyer:
    country = row["billing_country_code"] or row["country_code"]
    country = str(country).strip().upper() if country else None
    return Buyer(
        name=str(row["account_name"]),
        address_lines=_address_lines(row, country),
        country=country,
        vat_id=row["vat_id"] or None,
        email=row["invoice_email"] or row["account_email"] or None,
        contact_name=row["billing_contact_name"] or None,
    )


def _address_lines(row: dict, country: str | None) -> tuple[str, ...]:
    """Street lines, then the city line in the order the buyer's country writes it."""
    street = [part.strip() for part in str(row["billing_street"] or "").splitlines()]
    city, postal, region = (
        (row[name] or "").strip()
        for name in ("billing_city", "billing_postal_code", "billing_region")
    )
    if country in _CITY_FIRST:
        city_line = ", ".join(part for part in (city, f"{region} {postal}".strip()) if part)
    else:
        city_line = " ".join(part for part in (postal, city) if part)
    return tuple(line for line in [*street, city_line] if line)


def _language_and_locale(row: dict) -> tuple[str, str]:
    """The account's language and a Babel locale for it (`de` in Germany is `de_DE`)."""
    language = str(row["language"] or DEFAULT_LANGUAGE).strip().lower().split("_")[0]
    country = row["billing_country_code"] or row["country_code"]
    wanted = row["locale"] or (f"{language}_{str(country).upper()}" if country else language)
    return language, str(parse_locale(str(wanted), fallback=language))
