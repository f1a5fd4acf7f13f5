"""Everything the portal reads about a customer, filtered by that customer in the SQL itself.

A route never queries the warehouse by hand; it asks a `CustomerView`, which every
statement restricts to the signed-in account (`account_key = ?`) and, for a per-invoice
link, to that one invoice. A wrong id therefore finds nothing rather than another
customer's row, and the route answers 404 (`web.not_found()`):

    with web.customer_view(request) as view:
        invoice = view.invoice_by_public_id(request.path_params["invoice"])
    if invoice is None:
        web.not_found()

Ids in URLs are public ids: an HMAC of the kind, the account and the internal id under the
portal secret (`public_id`), 128 bits, so they cannot be guessed or enumerated and say
nothing about the ERP's numbering. `CustomerView(conn, customer, secret=...)` takes a
DuckDB connection or a `Reader` (Postgres); `web.customer_view` builds one per request.
Amounts are `Decimal`, rounded to the currency's minor units.

Balances are q2c's own (`core.fct_invoice_balances`: total less the cash q2c allocated and
the credit notes applied), so an invoice paid in the portal shows paid once the nightly has
allocated the payment, before the ERP books it. A warehouse without that model (the cash
models not built) shows the ERP's balance (`fct_invoices.balance_amount`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from q2c.money import minor_units
from q2c.warehouse import OPS_SCHEMA

logger = logging.getLogger(__name__)

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
PAYMENT = "payment"
DOCUMENT = "document"
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{22}")

# Document kinds a customer may download.
PDF = "pdf"
EINVOICE = "einvoice"
ATTACHMENT = "attachment"


class Reader(Protocol):
    """A read-only warehouse connection: rows as dicts, `?` placeholders."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def has_table(self, schema: str, name: str) -> bool: ...


class DuckReader:
    """A `Reader` over a DuckDB connection (opened read-only by the portal)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def has_table(self, schema: str, name: str) -> bool:
        return bool(self.rows(
            "select 1 as found from information_schema.tables"
            " where table_schema = ? and table_name = ?", (schema, name)))


class PostgresReader:
    """A `Reader` over a psycopg2 connection in a read-only session."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def has_table(self, schema: str, name: str) -> bool:
        return bool(self.rows(
            "select 1 as found from information_schema.tables"
            " where table_schema = ? and table_name = ?", (schema, name)))


def reader_of(conn: Any) -> Reader:
    """A `Reader` for a DuckDB connection, or `conn` itself when it already is one."""
    return conn if hasattr(conn, "rows") else DuckReader(conn)


def public_id(secret: bytes, kind: str, account_key: str, internal_id: str) -> str:
    """The id an object has in URLs: 128 bits of HMAC-SHA256, base64url (22 characters)."""
    message = "\x1f".join(("q2c-portal-id-v1", kind, account_key, internal_id)).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Account:
    """The signed-in customer's account, as pages show it."""

    account_key: str
    name: str
    language: str
    locale: str
    country_code: str | None
    segment: str | None
    currency: str | None
    billing_email: str | None
    billing_contact_name: str | None
    vat_id: str | None
    address_lines: tuple[str, ...]


@dataclass(frozen=True)
class ReceivedPayment:
    """A portal payment Stripe confirmed that the warehouse has not booked yet."""

    amount: Decimal
    currency: str
    received_on: dt.date


@dataclass(frozen=True)
class InvoiceSummary:
    """One invoice as the list shows it.

    `balance` is what the warehouse says is open. `received` (portal payments confirmed
    since the last nightly) and `portal_dispute` (a portal dispute not resolved yet) come
    from the ops store (`q2c.portal.pending`); `amount_due` is what is shown and charged.
    """

    public_id: str
    invoice_id: str
    invoice_key: str
    invoice_number: str
    issue_date: dt.date | None
    due_date: dt.date | None
    currency: str
    total: Decimal
    tax: Decimal
    paid: Decimal
    credited: Decimal
    balance: Decimal
    status: str
    is_disputed: bool
    days_overdue: int
    po_number: str | None
    customer_memo: str | None
    received: tuple[ReceivedPayment, ...] = ()
    portal_dispute: bool = False

    @property
    def is_open(self) -> bool:
        return self.balance > 0

    @property
    def received_total(self) -> Decimal:
        return sum((payment.amount for payment in self.received), Decimal(0))

    @property
    def amount_due(self) -> Decimal:
        """The balance less the payments being booked, never below 0 because of them."""
        if not self.received:
            return self.balance
        return max(self.balance - self.received_total, Decimal(0)).quantize(self.balance)

    @property
    def in_dispute(self) -> bool:
        """Disputed in the CRM (the warehouse) or in the portal (the ops store)."""
        return self.is_disputed or self.portal_dispute

    @property
    def is_payable(self) -> bool:
        return self.amount_due > 0 and not self.in_dispute


@dataclass(frozen=True)
class InvoiceLine:
    position: int
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal
    line_type: str | None


@dataclass(frozen=True)
class TaxLine:
    percent: Decimal | None
    taxable: Decimal
    tax: Decimal


@dataclass(frozen=True)
class AppliedItem:
    """A payment or credit note applied to an invoice."""

    kind: str
    date: dt.date | None
    amount: Decimal
    reference: str | None


@dataclass(frozen=True)
class InvoiceDetail(InvoiceSummary):
    """An invoice with its lines, tax, and the payments and credit notes applied to it."""

    lines: tuple[InvoiceLine, ...] = ()
    tax_lines: tuple[TaxLine, ...] = ()
    applied: tuple[AppliedItem, ...] = ()
    credit_notes: tuple[CreditNote, ...] = ()
    subtotal: Decimal = Decimal(0)


@dataclass(frozen=True)
class CreditNote:
    public_id: str
    credit_note_id: str
    number: str
    issue_date: dt.date | None
    currency: str
    total: Decimal
    tax: Decimal
    remaining: Decimal
    reason: str | None
    invoice_number: str | None


@dataclass(frozen=True)
class Payment:
    public_id: str
    payment_id: str
    date: dt.date | None
    currency: str
    amount: Decimal
    unapplied: Decimal
    method: str | None
    reference: str | None
    applied_to: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True)
class StatementLine:
    date: dt.date | None
    kind: str
    number: str
    debit: Decimal
    credit: Decimal
    balance: Decimal


@dataclass(frozen=True)
class Statement:
    """Open items of the account: invoices owed, less unapplied credit and payments."""

    currency: str | None
    open_invoices: tuple[InvoiceSummary, ...]
    open_credits: tuple[CreditNote, ...]
    unapplied_payments: tuple[Payment, ...]
    invoices_open_total: Decimal
    credits_total: Decimal
    payments_unapplied_total: Decimal
    balance: Decimal
    overdue_total: Decimal
    lines: tuple[StatementLine, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DocumentFile:
    """A file of one invoice the customer may download."""

    public_id: str
    kind: str
    filename: str
    content_type: str
    path: Path
    invoice_id: str


@dataclass(frozen=True)
class FileRoots:
    """Where the portal may serve files from; a manifest path elsewhere is not served."""

    documents_dir: Path | None = None
    einvoice_dir: Path | None = None
    portal_store: Path | None = None
    attachments_dir: Path | None = None

    def allows(self, path: Path) -> bool:
        resolved = path.resolve()
        for root in (self.documents_dir, self.einvoice_dir, self.portal_store,
                     self.attachments_dir):
            if root is not None and resolved.is_relative_to(Path(root).resolve()):
                return True
        return False


BALANCES = "fct_invoice_balances"
CASH_APPLICATIONS = "fct_cash_applications"

_INVOICE_FIELDS = """
    i.invoice_key, i.invoice_id, i.invoice_number, i.issue_date, i.due_date, i.currency,
    i.total_amount, i.tax_amount, i.subtotal_amount, i.is_disputed, i.po_number,
    i.customer_memo,
"""
# The ERP's figures: its balance, the computed one only where the ERP states none.
_ERP_BALANCE = _INVOICE_FIELDS + """
    i.paid_amount, i.credited_amount,
    coalesce(i.balance_amount, i.computed_balance_amount) as balance_amount, i.status,
    i.days_overdue
    from core.fct_invoices i
"""
# q2c's figures (fct_invoice_balances; the ERP's for an invoice it has no row of yet). Its
# settlement status knows no `overdue`: an invoice q2c sees open with nothing applied is
# overdue when the ERP counts days overdue, and one q2c sees settled is never overdue.
_Q2C_BALANCE = _INVOICE_FIELDS + """
    coalesce(b.paid_amount, i.paid_amount) as paid_amount,
    coalesce(b.credited_amount, i.credited_amount) as credited_amount,
    case
        when b.invoice_key is null then coalesce(i.balance_amount, i.computed_balance_amount)
        else b.balance_amount
    end as balance_amount,
    case
        when b.invoice_key is null then i.status
        when b.balance_amount <= 0 then b.settlement_status
        when b.settlement_status = 'partially_paid' then 'partially_paid'
        when i.days_overdue > 0 then 'overdue'
        else 'open'
    end as status,
    case when b.balance_amount <= 0 then 0 else i.days_overdue end as days_overdue
    from core.fct_invoices i
    left join core.fct_invoice_balances b on b.invoice_key = i.invoice_key
"""


class CustomerView:
    """The warehouse as one customer may see it (see the module docstring).

    Args:
        conn: A DuckDB connection or a `Reader`.
        customer: The signed-in `web.Customer`.
        secret: The portal secret public ids are made with.
        files: Where documents may be served from; without it no file is listed.
    """

    def __init__(self, conn: Any, customer: Any, *, secret: bytes,
                 files: FileRoots | None = None) -> None:
        if not secret:
            raise ValueError("CustomerView needs the portal secret to make public ids")
        self.reader = reader_of(conn)
        self.customer = customer
        self.secret = secret
        self.files = files
        self.account_key: str = customer.account_key
        self.invoice_id: str | None = customer.invoice_id
        self._tables: dict[str, bool] = {}

    def has_core_table(self, name: str) -> bool:
        """Whether the warehouse has `core.<name>` (asked once per view)."""
        if name not in self._tables:
            self._tables[name] = self.reader.has_table("core", name)
        return self._tables[name]

    @property
    def q2c_balances(self) -> bool:
        """True when balances are q2c's own (fct_invoice_balances), False for the ERP's."""
        return self.has_core_table(BALANCES)

    def _invoice_select(self) -> str:
        return "select " + (_Q2C_BALANCE if self.q2c_balances else _ERP_BALANCE)

    def public_id(self, kind: str, internal_id: str) -> str:
        return public_id(self.secret, kind, self.account_key, internal_id)

    def account(self) -> Account | None:
        rows = self.reader.rows(
            "select account_key, account_name, language, locale, country_code, segment,"
            " currency, billing_email, billing_contact_name, vat_id, billing_street,"
            " billing_postal_code, billing_city, billing_country_code"
            " from core.dim_accounts where account_key = ?", (self.account_key,))
        if not rows:
            return None
        row = rows[0]
        city = " ".join(p for p in (row["billing_postal_code"], row["billing_city"]) if p)
        lines = tuple(p for p in (row["billing_street"], city, row["billing_country_code"])
                      if p)
        return Account(
            account_key=row["account_key"], name=row["account_name"] or "",
            language=row["language"] or "en", locale=row["locale"] or "en_US",
            country_code=row["country_code"], segment=row["segment"],
            currency=row["currency"], billing_email=row["billing_email"],
            billing_contact_name=row["billing_contact_name"], vat_id=row["vat_id"],
            address_lines=lines,
        )

    def invoices(self) -> list[InvoiceSummary]:
        """The account's invoices, newest first (the one invoice of a per-invoice link)."""
        rows = self.reader.rows(
            self._invoice_select()
            + " where i.account_key = ? and (? is null or i.invoice_id = ?)"
            " order by i.issue_date desc, i.invoice_number desc",
            (self.account_key, self.invoice_id, self.invoice_id))
        return [self._summary(row) for row in rows]

    def invoice_by_public_id(self, public: str) -> InvoiceDetail | None:
        """The invoice with this public id, or None (unknown, or another customer's)."""
        if not _PUBLIC_ID.fullmatch(public or ""):
            return None
        for invoice in self.invoices():
            if hmac.compare_digest(invoice.public_id, public):
                return self._detail(invoice)
        return None

    def invoice_by_id(self, invoice_id: str) -> InvoiceDetail | None:
        """The invoice with this ERP id, if it is this customer's (links, checkout)."""
        rows = self.reader.rows(
            self._invoice_select()
            + " where i.account_key = ? and i.invoice_id = ? and (? is null or i.invoice_id = ?)",
            (self.account_key, invoice_id, self.invoice_id, self.invoice_id))
        return self._detail(self._summary(rows[0])) if rows else None

    def credit_notes(self) -> list[CreditNote]:
        """Credit notes of the account (of the invoice, for a per-invoice link)."""
        rows = self.reader.rows(
            "select c.credit_note_key, c.source_id, c.credit_note_number, c.issue_date,"
            " c.currency, c.total_amount, c.tax_amount, c.remaining_credit, c.reason,"
            " i.invoice_number from core.fct_credit_notes c"
            " left join core.fct_invoices i on c.invoice_key = i.invoice_key"
            " and i.account_key = ?"
            " where c.account_key = ? and (? is null or i.invoice_id = ?)"
            " order by c.issue_date desc, c.credit_note_number desc",
            (self.account_key, self.account_key, self.invoice_id, self.invoice_id))
        return [self._credit_note(row) for row in rows]

    def credit_note_by_public_id(self, public: str) -> CreditNote | None:
        if not _PUBLIC_ID.fullmatch(public or ""):
            return None
        return next((note for note in self.credit_notes()
                     if hmac.compare_digest(note.public_id, public)), None)

    def payments(self) -> list[Payment]:
        """Payments of the account, newest first, with the invoices each was applied to."""
        if self.invoice_id is not None:
            return []
        rows = self.reader.rows(
            "select payment_key, payment_id, payment_date, currency, amount,"
            " unapplied_amount, payment_method, reference_number from core.fct_payments"
            " where account_key = ? order by payment_date desc, payment_id desc",
            (self.account_key,))
        applied = self.reader.rows(
            "select a.payment_key, i.invoice_number, a.amount"
            " from core.fct_payment_allocations a"
            " join core.fct_payments p on a.payment_key = p.payment_key"
            " join core.fct_invoices i on a.invoice_key = i.invoice_key"
            " where p.account_key = ? and i.account_key = ?"
            " order by i.invoice_number", (self.account_key, self.account_key))
        by_payment: dict[str, list[tuple[str, Decimal]]] = {}
        for row in applied:
            by_payment.setdefault(row["payment_key"], []).append(
                (row["invoice_number"], Decimal(row["amount"] or 0)))
        return [self._payment(row, by_payment.get(row["payment_key"], [])) for row in rows]

    def statement(self) -> Statement:
        """The account statement: open invoices, unapplied credits and payments."""
        invoices = [inv for inv in self.invoices() if inv.balance != 0]
        credits = [note for note in self.credit_notes() if note.remaining > 0]
        payments = [pay for pay in self.payments() if pay.unapplied > 0]
        currencies = {item.currency for item in (*invoices, *credits, *payments)}
        currency = currencies.pop() if len(currencies) == 1 else None
        open_total = sum((inv.balance for inv in invoices), Decimal(0))
        credit_total = sum((note.remaining for note in credits), Decimal(0))
        unapplied = sum((pay.unapplied for pay in payments), Decimal(0))
        overdue = sum((inv.balance for inv in invoices if inv.days_overdue > 0), Decimal(0))
        lines, running = [], Decimal(0)
        items = sorted(
            [(inv.issue_date, "invoice", inv.invoice_number, inv.balance, Decimal(0))
             for inv in invoices]
            + [(note.issue_date, "credit_note", note.number, Decimal(0), note.remaining)
               for note in credits]
            + [(pay.date, "payment", pay.reference or "", Decimal(0), pay.unapplied)
               for pay in payments],
            key=lambda item: (item[0] or dt.date.min, item[2]))
        for date, kind, number, debit, credit in items:
            running += debit - credit
            lines.append(StatementLine(date, kind, number, debit, credit, running))
        return Statement(
            currency=currency, open_invoices=tuple(invoices), open_credits=tuple(credits),
            unapplied_payments=tuple(payments), invoices_open_total=open_total,
            credits_total=credit_total, payments_unapplied_total=unapplied,
            balance=open_total - credit_total - unapplied, overdue_total=overdue,
            lines=tuple(lines),
        )

    def documents(self, invoice: InvoiceSummary) -> list[DocumentFile]:
        """The files of one of this customer's invoices: PDF, e-invoice, attachments."""
        if self.files is None or invoice.public_id != self.public_id(INVOICE,
                                                                     invoice.invoice_id):
            return []
        found: list[DocumentFile] = []
        found += self._manifest_files(
            invoice, "document_manifest", PDF, "application/pdf", "rendered_at")
        found += self._manifest_files(
            invoice, "einvoice_manifest", EINVOICE, "application/xml", "created_at")
        found += self._published_files(invoice, {doc.path.name for doc in found})
        unique: dict[str, DocumentFile] = {}
        for document in found:
            if self.files.allows(document.path) and document.path.is_file():
                unique.setdefault(document.public_id, document)
            else:
                logger.warning("invoice %s: file %s is outside the portal's folders or "
                               "missing; not offered", invoice.invoice_number, document.path)
        return list(unique.values())

    def document_by_public_id(self, invoice_public: str,
                              document_public: str) -> tuple[InvoiceDetail,
                                                             DocumentFile] | None:
        invoice = self.invoice_by_public_id(invoice_public)
        if invoice is None or not _PUBLIC_ID.fullmatch(document_public or ""):
            return None
        document = next((doc for doc in self.documents(invoice)
                         if hmac.compare_digest(doc.public_id, document_public)), None)
        return (invoice, document) if document is not None else None

    def _manifest_files(self, invoice: InvoiceSummary, table: str, kind: str,
                        content_type: str, order_column: str) -> list[DocumentFile]:
        """The invoice's newest file in a manifest, when the manifest row is surely its.

        The manifests name an invoice by its ERP id and number only, and an invoice id is
        unique only with its ERP (`source_system`): with two ERPs, customer B's invoice may
        carry the id and number of customer A's. A manifest row is therefore served only
        when exactly one warehouse invoice, of any account and ERP, has its id and number,
        and that invoice is this one (by `invoice_key`); a row two invoices could own is
        offered to neither and logged, since nothing in it says whose file it is. Joining
        on the account alone would not do: the other invoice's row would still match.
        """
        if not self.reader.has_table(OPS_SCHEMA, table):
            return []
        rows = self.reader.rows(
            f"select m.document_id, m.path, (select count(*) from core.fct_invoices o"
            " where o.invoice_id = m.invoice_id and o.invoice_number = m.invoice_number)"
            f" as owners from {OPS_SCHEMA}.{table} m"
            " join core.fct_invoices i on m.invoice_id = i.invoice_id"
            " and m.invoice_number = i.invoice_number"
            " where i.account_key = ? and i.invoice_key = ? and (? is null or i.invoice_id = ?)"
            f" order by m.{order_column} desc",
            (self.account_key, invoice.invoice_key, self.invoice_id, self.invoice_id))
        ambiguous = [row for row in rows if row["owners"] != 1]
        if ambiguous:
            logger.warning(
                "invoice %s (id %s, account %s): %d warehouse invoices (of different ERPs) "
                "have this id and number, so the %d file(s) of %s.%s for it cannot be told "
                "apart; none is offered", invoice.invoice_number, invoice.invoice_id,
                self.account_key, ambiguous[0]["owners"], len(ambiguous), OPS_SCHEMA, table)
        rows = [row for row in rows if row["owners"] == 1][:1]
        documents = []
        for row in rows:
            path = Path(row["path"])
            if not path.is_absolute() and self.files and self.files.documents_dir:
                path = Path(self.files.documents_dir) / path
            suffix = ".xml" if kind == EINVOICE else ".pdf"
            documents.append(DocumentFile(
                public_id=self.public_id(DOCUMENT, f"{kind}:{row['document_id']}"),
                kind=kind, filename=f"{invoice.invoice_number}{suffix}",
                content_type=content_type, path=path, invoice_id=invoice.invoice_id))
        return documents

    def _published_files(self, invoice: InvoiceSummary,
                         seen: set[str]) -> list[DocumentFile]:
        """Files published to the portal store for this invoice (PortalStore)."""
        if self.files is None or self.files.portal_store is None:
            return []
        from q2c.delivery.portal import PortalStore

        store = PortalStore(self.files.portal_store)
        try:
            published = store.list_documents(self.account_key)
        except ValueError:
            return []
        documents = []
        for doc in published:
            if doc.invoice_id != invoice.invoice_id or doc.account_key != self.account_key:
                continue
            kind = PDF if doc.content_type == "application/pdf" else ATTACHMENT
            if kind == PDF and seen:
                continue
            documents.append(DocumentFile(
                public_id=self.public_id(DOCUMENT, f"published:{doc.token}"), kind=kind,
                filename=doc.filename, content_type=doc.content_type, path=doc.path,
                invoice_id=invoice.invoice_id))
        return documents

    def _summary(self, row: dict[str, Any]) -> InvoiceSummary:
        currency = row["currency"] or "EUR"
        return InvoiceSummary(
            public_id=self.public_id(INVOICE, row["invoice_id"]),
            invoice_id=row["invoice_id"], invoice_key=row["invoice_key"],
            invoice_number=row["invoice_number"], issue_date=row["issue_date"],
            due_date=row["due_date"], currency=currency,
            total=_amount(row["total_amount"], currency), tax=_amount(row["tax_amount"],
                                                                       currency),
            paid=_amount(row["paid_amount"], currency),
            credited=_amount(row["credited_amount"], currency),
            balance=_amount(row["balance_amount"], currency), status=row["status"] or "",
            is_disputed=bool(row["is_disputed"]), days_overdue=int(row["days_overdue"] or 0),
            po_number=row["po_number"], customer_memo=row["customer_memo"],
        )

    def _detail(self, invoice: InvoiceSummary) -> InvoiceDetail:
        scope = (self.account_key, invoice.invoice_key, self.invoice_id, self.invoice_id)
        where = (" where i.account_key = ? and i.invoice_key = ?"
                 " and (? is null or i.invoice_id = ?)")
        lines = self.reader.rows(
            "select l.line_index, l.description, l.item_name, l.quantity, l.unit_price,"
            " l.amount, l.line_type from core.fct_invoice_lines l"
            " join core.fct_invoices i on l.invoice_key = i.invoice_key"
            + where + " order by l.line_index", scope)
        taxes = self.reader.rows(
            "select t.tax_percent, t.taxable_amount, t.tax_amount"
            " from core.fct_invoice_tax_lines t"
            " join core.fct_invoices i on t.invoice_key = i.invoice_key"
            + where + " order by t.line_index", scope)
        applied = self.reader.rows(
            f"select {self._applied_columns()},"
            " coalesce(p.reference_number, c.credit_note_number) as reference"
            f" from {self._applications()} a"
            " join core.fct_invoices i on a.invoice_key = i.invoice_key"
            " left join core.fct_payments p on a.payment_key = p.payment_key"
            " and p.account_key = i.account_key"
            " left join core.fct_credit_notes c on a.credit_note_key = c.credit_note_key"
            " and c.account_key = i.account_key"
            + where + self._applied_filter() + " order by allocation_date, allocation_key",
            scope)
        currency = invoice.currency
        notes = [note for note in self.credit_notes()
                 if note.invoice_number == invoice.invoice_number]
        values = {name: getattr(invoice, name) for name in InvoiceSummary.__dataclass_fields__}
        return InvoiceDetail(
            **values,
            lines=tuple(
                InvoiceLine(
                    position=position, description=row["description"] or row["item_name"]
                    or "", quantity=_plain(row["quantity"]),
                    unit_price=_plain(row["unit_price"]),
                    amount=_amount(row["amount"], currency), line_type=row["line_type"])
                for position, row in enumerate(lines, start=1)),
            tax_lines=tuple(
                TaxLine(percent=_plain(row["tax_percent"]),
                        taxable=_amount(row["taxable_amount"], currency),
                        tax=_amount(row["tax_amount"], currency)) for row in taxes),
            applied=tuple(
                AppliedItem(kind=row["allocation_type"] or "payment",
                            date=row["allocation_date"],
                            amount=_amount(row["amount"], currency),
                            reference=row["reference"]) for row in applied),
            credit_notes=tuple(notes),
            subtotal=_amount(invoice.total - invoice.tax, currency),
        )

    def payments_applied(self, invoice: InvoiceSummary, ids: Sequence[str]) -> set[str]:
        """Which of `ids` (Stripe charge or payment intent ids) name a payment the warehouse
        has applied to this invoice: as the payment's id, or as its reference (a charge's
        reference is its payment intent; an ERP payment of it may carry either)."""
        wanted = sorted({value for value in ids if value})
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        rows = self.reader.rows(
            "select p.payment_id, p.reference_number"
            f" from {self._applications()} a"
            " join core.fct_invoices i on a.invoice_key = i.invoice_key"
            " join core.fct_payments p on a.payment_key = p.payment_key"
            " where i.account_key = ? and i.invoice_id = ? and (? is null or i.invoice_id = ?)"
            f" and (p.payment_id in ({marks}) or upper(p.reference_number) in ({marks}))",
            (self.account_key, invoice.invoice_id, self.invoice_id, self.invoice_id,
             *wanted, *(value.upper() for value in wanted)))
        named = {value.upper(): value for value in wanted}
        found = set()
        for row in rows:
            for value in (row["payment_id"], row["reference_number"]):
                if value and str(value).upper() in named:
                    found.add(named[str(value).upper()])
        return found

    def _applications(self) -> str:
        """Where applications are: q2c's (fct_cash_applications) beside q2c's balances, so
        what is listed adds up to the balance shown; the ERP's otherwise."""
        if self.q2c_balances and self.has_core_table(CASH_APPLICATIONS):
            return f"core.{CASH_APPLICATIONS}"
        return "core.fct_payment_allocations"

    def _applied_columns(self) -> str:
        if self._applications().endswith(CASH_APPLICATIONS):
            return ("a.allocation_type, a.allocated_on as allocation_date, a.amount,"
                    " a.application_key as allocation_key")
        return "a.allocation_type, a.allocation_date, a.amount, a.allocation_key"

    def _applied_filter(self) -> str:
        """Fees settle nothing (fct_invoice_balances leaves them out too)."""
        if self._applications().endswith(CASH_APPLICATIONS):
            return " and a.allocation_type <> 'fee'"
        return ""

    def _credit_note(self, row: dict[str, Any]) -> CreditNote:
        currency = row["currency"] or "EUR"
        return CreditNote(
            public_id=self.public_id(CREDIT_NOTE, row["credit_note_key"]),
            credit_note_id=row["source_id"], number=row["credit_note_number"] or "",
            issue_date=row["issue_date"], currency=currency,
            total=_amount(row["total_amount"], currency),
            tax=_amount(row["tax_amount"], currency),
            remaining=_amount(row["remaining_credit"], currency), reason=row["reason"],
            invoice_number=row["invoice_number"],
        )

    def _payment(self, row: dict[str, Any],
                 applied: list[tuple[str, Decimal]]) -> Payment:
        currency = row["currency"] or "EUR"
        return Payment(
            public_id=self.public_id(PAYMENT, row["payment_key"]),
            payment_id=row["payment_id"], date=row["payment_date"], currency=currency,
            amount=_amount(row["amount"], currency),
            unapplied=_amount(row["unapplied_amount"], currency),
            method=row["payment_method"], reference=row["reference_number"],
            applied_to=tuple((number, _amount(amount, currency))
                             for number, amount in applied),
        )


def _amount(value: Any, currency: str) -> Decimal:
    """A warehouse amount as Decimal in the currency's minor units (0 for NULL)."""
    amount = Decimal(str(value)) if value is not None else Decimal(0)
    try:
        digits = minor_units(currency)
    except ValueError:
        digits = 2
    return amount.quantize(Decimal(1).scaleb(-digits))


def _plain(value: Any) -> Decimal | None:
    """A quantity or rate without trailing zeros (1.000000 -> 1)."""
    if value is None:
        return None
    amount = Decimal(str(value))
    return amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize()
