"""The account statement: an account's open items and their aging, as a PDF attachment.

Generated from the AR data in the warehouse, on the statement date (the run's business
date):

- open invoices from `core.fct_invoices`: issued by the statement date, with an open amount
  above zero. The open amount is the ERP's balance, or the computed one (total - paid -
  credited) when the ERP has none, as on the invoice document itself;
- unapplied credit (`core.fct_credit_notes.remaining_credit` above zero), which lowers the
  balance;
- aging buckets by days past the due date (an invoice without one is due on its issue
  date), the buckets of `kpi.kpi_ar_aging`: not yet due, 1-30, 31-60, 61-90, over 90.

One section per currency: amounts in different currencies are never added. Money is
Decimal in the currency's ISO 4217 minor units. The statement renders through the approved
`account_statement` template of the content registry (labels in its language files, the
default theme) and the same PDF renderer as the invoice, in the invoice's locale.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

import duckdb

from q2c.attachments.repository import RepositoryDocument
from q2c.content.registry import ContentEntry, ContentError, ContentRegistry
from q2c.documents.model import Buyer, InvoiceDocument
from q2c.documents.render import THEME_ID, PdfRenderer, pdf_renderer
from q2c.money import Money, UnknownCurrencyError
from q2c.settings import Seller

log = logging.getLogger(__name__)

TEMPLATE_ID = "account_statement"
BUCKETS = ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")

_OPEN_INVOICES_SQL = """
select
    invoice_number,
    issue_date,
    coalesce(due_date, issue_date) as due_date,
    currency,
    total_amount,
    coalesce(balance_amount, computed_balance_amount) as open_amount
from core.fct_invoices
where account_key = ?
  and (issue_date is null or issue_date <= ?)
  and coalesce(balance_amount, computed_balance_amount) > 0
order by currency, coalesce(due_date, issue_date), invoice_number
"""

_OPEN_CREDITS_SQL = """
select credit_note_number, issue_date, currency, remaining_credit
from core.fct_credit_notes
where account_key = ?
  and (issue_date is null or issue_date <= ?)
  and remaining_credit > 0
order by currency, issue_date, credit_note_number
"""

_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., %]+\))$")


class StatementError(ValueError):
    """The statement cannot be built: the message names the account, table and field."""


@dataclass(frozen=True)
class StatementLine:
    """One open invoice: its amount, what is still open, and how late it is."""

    invoice_number: str
    issue_date: dt.date | None
    due_date: dt.date | None
    total: Money
    open_amount: Money
    days_overdue: int

    @property
    def bucket(self) -> str:
        return bucket_of(self.days_overdue)


@dataclass(frozen=True)
class StatementCredit:
    """Credit the customer has not yet used against an invoice."""

    credit_note_number: str
    issue_date: dt.date | None
    remaining: Money


@dataclass(frozen=True)
class StatementSection:
    """The open items of one currency, their aging and the balance."""

    currency: str
    lines: tuple[StatementLine, ...]
    credits: tuple[StatementCredit, ...] = ()

    @property
    def open_total(self) -> Money:
        return _sum((line.open_amount for line in self.lines), self.currency)

    @property
    def credit_total(self) -> Money:
        return _sum((credit.remaining for credit in self.credits), self.currency)

    @property
    def balance(self) -> Money:
        """Open invoices less unapplied credit: what the customer owes in this currency."""
        return self.open_total - self.credit_total

    @property
    def aging(self) -> dict[str, Money]:
        """Open amount by bucket, every bucket present, in `BUCKETS` order."""
        return {bucket: _sum((line.open_amount for line in self.lines if line.bucket == bucket),
                             self.currency)
                for bucket in BUCKETS}


@dataclass(frozen=True)
class AccountStatement:
    """What one account statement prints."""

    account_key: str
    as_of: dt.date
    buyer: Buyer
    seller: Seller
    language: str
    locale: str
    sections: tuple[StatementSection, ...]

    @property
    def file_name(self) -> str:
        return f"account-statement-{self.as_of.isoformat()}.pdf"


def bucket_of(days_overdue: int) -> str:
    """The aging bucket of an item `days_overdue` days past its due date (0 or less: current)."""
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "days_1_30"
    if days_overdue <= 60:
        return "days_31_60"
    if days_overdue <= 90:
        return "days_61_90"
    return "days_over_90"


def load_account_statement(
    conn: duckdb.DuckDBPyConnection, doc: InvoiceDocument, as_of: dt.date
) -> AccountStatement:
    """The statement of the account of `doc` on `as_of`, printed for its buyer and locale.

    Raises:
        StatementError: The invoice has no account, or an open item has no usable currency.
    """
    if not doc.account_key:
        raise StatementError(f"invoice {doc.invoice_number} has no account in "
                             "core.dim_accounts, so there is no account to state")
    account = doc.account_key
    lines: dict[str, list[StatementLine]] = {}
    for number, issued, due, currency, total, open_amount in conn.execute(
        _OPEN_INVOICES_SQL, [account, as_of]
    ).fetchall():
        code = _currency(currency, account, "core.fct_invoices", number)
        days = (as_of - due).days if due is not None else 0
        lines.setdefault(code, []).append(StatementLine(
            invoice_number=str(number or ""), issue_date=issued, due_date=due,
            total=Money(total if total is not None else open_amount, code),
            open_amount=Money(open_amount, code), days_overdue=max(days, 0),
        ))
    credits: dict[str, list[StatementCredit]] = {}
    for number, issued, currency, remaining in conn.execute(
        _OPEN_CREDITS_SQL, [account, as_of]
    ).fetchall():
        code = _currency(currency, account, "core.fct_credit_notes", number)
        credits.setdefault(code, []).append(
            StatementCredit(str(number or ""), issued, Money(remaining, code)))
    sections = tuple(
        StatementSection(code, tuple(lines.get(code, ())), tuple(credits.get(code, ())))
        for code in sorted(set(lines) | set(credits))
    )
    return AccountStatement(account, as_of, doc.buyer, doc.seller, doc.language, doc.locale,
                            sections)


def render_statement_html(
    statement: AccountStatement, content: ContentRegistry
) -> tuple[str, ContentEntry]:
    """Fill the approved `account_statement` template; return the HTML and the version used."""
    entry = content.get(TEMPLATE_ID, on=statement.as_of)
    labels, _ = content.labels(statement.language, entry=entry)
    html = content.template(entry).render(
        statement=statement, labels=labels, locale=statement.locale,
        theme=_theme(content, statement.as_of), buckets=BUCKETS,
    )
    return html, entry


def render_statement_pdf(
    statement: AccountStatement, content: ContentRegistry, renderer: PdfRenderer | None = None
) -> tuple[bytes, ContentEntry]:
    """The statement as PDF bytes (deterministic for the same data and date)."""
    html, entry = render_statement_html(statement, content)
    return (renderer or pdf_renderer(content.root)).render(html), entry


class WarehouseStatementSource:
    """Generates account statements from the warehouse, once per account and locale per run.

    Several invoices of one account delivered the same night carry the same statement.
    """

    def __init__(self, conn: duckdb.DuckDBPyConnection, content: ContentRegistry,
                 as_of: dt.date, renderer: PdfRenderer | None = None):
        self.conn = conn
        self.content = content
        self.as_of = as_of
        self.renderer = renderer
        self._made: dict[tuple, RepositoryDocument] = {}

    def statement_for(self, doc: InvoiceDocument) -> RepositoryDocument:
        """The statement of the invoice's account, as an attachment.

        Raises:
            StatementError, ContentError, DocumentRenderError: It cannot be generated.
        """
        key = (doc.account_key, doc.language, doc.locale, doc.buyer)
        if key not in self._made:
            statement = load_account_statement(self.conn, doc, self.as_of)
            pdf, entry = render_statement_pdf(statement, self.content, self.renderer)
            self._made[key] = RepositoryDocument.of(
                statement.file_name, "", pdf,
                f"generated from core.fct_invoices and core.fct_credit_notes as of "
                f"{self.as_of.isoformat()} with {entry.ref}",
            )
            log.info("account statement of account %s generated (%d currencies)",
                     doc.account_key, len(statement.sections))
        return self._made[key]


def _currency(value: object, account: str, table: str, number: object) -> str:
    code = str(value or "").strip().upper()
    try:
        Money.zero(code)
    except UnknownCurrencyError as exc:
        raise StatementError(
            f"{table}, document {number} of account {account}: field `currency` {value!r} is "
            "not an ISO 4217 code; fix it in the ERP"
        ) from exc
    return code


def _sum(amounts, currency: str) -> Money:
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total


def _theme(content: ContentRegistry, on: dt.date) -> dict:
    """Colors and stylesheet of the approved default theme (as the invoice uses them)."""
    theme = content.get(THEME_ID, on=on)
    settings = content.read_yaml(theme, "theme.yaml")
    colors = {str(name): str(value) for name, value in (settings.get("colors") or {}).items()}
    for name, value in colors.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or not _COLOR.match(value):
            raise ContentError(f"{theme.file_path('theme.yaml')}: color `{name}: {value}` is "
                               "not a CSS color; fix it in a new version of the theme")
    return {
        "colors": colors,
        "stylesheet": theme.file_name(settings.get("stylesheet") or theme.main),
        "logo": theme.file_name(settings.get("logo") or "logo.svg"),
    }
