"""What the attachment rules know of an invoice: its ids and its account's attributes.

Read from `core.fct_invoices` joined to `core.dim_accounts`. Every column of the account is
an attribute a rule may test (`attribute.einvoice_format: facturx`); segment, country,
language and currency have short names of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb

_FACTS_SQL = """
select
    invoices.invoice_id as _invoice_id,
    invoices.invoice_number as _invoice_number,
    invoices.crm_opportunity_id as _opportunity_id,
    invoices.currency as _invoice_currency,
    accounts.*
from core.fct_invoices as invoices
left join core.dim_accounts as accounts on accounts.account_key = invoices.account_key
where invoices.invoice_id in (select unnest(?::varchar[]))
"""

# Short names a rule's `when:` may use, and the account column each one reads.
SHORT_NAMES = {"segment": "segment", "country": "country_code", "language": "language",
               "currency": "currency"}


@dataclass(frozen=True)
class InvoiceFacts:
    """The ids that key the repository layout and the account attributes rules test.

    `attributes` holds every `core.dim_accounts` column of the invoice's account (values as
    text, None when empty, all None when the invoice has no account).
    """

    invoice_id: str
    invoice_number: str
    opportunity_id: str | None = None
    currency: str | None = None
    attributes: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def account_key(self) -> str | None:
        return self.attributes.get("account_key")

    def ids(self) -> dict[str, str | None]:
        """The values of the layout placeholders (`q2c.attachments.layout.PLACEHOLDERS`)."""
        crm = self.attributes.get("crm_account_id")
        erp = self.attributes.get("erp_customer_id")
        return {
            "account_id": crm or erp,
            "account_key": self.account_key,
            "crm_account_id": crm,
            "erp_customer_id": erp,
            "opportunity_id": self.opportunity_id,
            "quote_id": self.opportunity_id,
            "order_id": self.opportunity_id,
            "invoice_id": self.invoice_id,
            "invoice_number": self.invoice_number,
        }

    def value(self, name: str) -> str | None:
        """A fact by the name a rule uses: a short name or `attribute.<column>`."""
        column = SHORT_NAMES.get(name) or name.removeprefix("attribute.")
        if column == "currency" and not self.attributes.get("currency"):
            return self.currency
        return self.attributes.get(column)

    def knows(self, name: str) -> bool:
        """Whether `name` is a fact of the account model (misspelt attributes are not)."""
        return name in SHORT_NAMES or name.removeprefix("attribute.") in self.attributes


def load_invoice_facts(
    conn: duckdb.DuckDBPyConnection, invoice_ids: Sequence[str]
) -> dict[str, InvoiceFacts]:
    """The facts of each invoice id found in `core.fct_invoices`."""
    ids = sorted({str(invoice_id) for invoice_id in invoice_ids})
    if not ids:
        return {}
    cursor = conn.execute(_FACTS_SQL, [ids])
    names = [column[0] for column in cursor.description]
    facts = {}
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        attributes = {name: _text(value) for name, value in row.items()
                      if not name.startswith("_")}
        facts[str(row["_invoice_id"])] = InvoiceFacts(
            invoice_id=str(row["_invoice_id"]),
            invoice_number=str(row["_invoice_number"] or ""),
            opportunity_id=_text(row["_opportunity_id"]),
            currency=_text(row["_invoice_currency"]),
            attributes=attributes,
        )
    return facts


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None
