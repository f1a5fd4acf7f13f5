"""Review candidates read from the warehouse marts (core.fct_invoices, fct_credit_notes).

The rules need facts one invoice row does not hold: whether it is the customer's first
invoice (the earliest by issue date among all of the account's invoices in the mart, so an
invoice from years ago still counts) and whether the account is flagged on hold (a column
of core.dim_accounts the policy names). An invoice whose customer is unknown counts as a
first invoice: nobody has seen that customer invoiced before.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from q2c.review.policy import (
    CREDIT_NOTE,
    INVOICE,
    CustomerOnHold,
    ReviewCandidate,
    ReviewPolicy,
    ReviewPolicyError,
)

if TYPE_CHECKING:
    import duckdb

_INVOICES_SQL = """
with ranked as (
    select
        invoice_id,
        coalesce(invoice_number, invoice_id) as invoice_number,
        account_key,
        currency,
        total_amount,
        issue_date,
        row_number() over (
            partition by account_key
            order by issue_date nulls last, created_at nulls last, invoice_number, invoice_id
        ) as nth_invoice
    from core.fct_invoices
)
select
    ranked.invoice_id,
    ranked.invoice_number,
    ranked.account_key,
    ranked.currency,
    ranked.total_amount,
    ranked.issue_date,
    ranked.account_key is null or ranked.nth_invoice = 1 as is_first_invoice,
    accounts.account_name,
    accounts.erp_customer_id,
    {on_hold} as customer_on_hold
from ranked
left join core.dim_accounts as accounts
    on ranked.account_key = accounts.account_key
{where}
order by ranked.invoice_number, ranked.invoice_id
"""

_CREDIT_NOTES_SQL = """
select
    notes.credit_memo_id,
    coalesce(notes.credit_note_number, notes.credit_memo_id) as credit_note_number,
    notes.account_key,
    notes.currency,
    notes.total_amount,
    notes.issue_date,
    accounts.account_name,
    accounts.erp_customer_id,
    {on_hold} as customer_on_hold
from core.fct_credit_notes as notes
left join core.dim_accounts as accounts
    on notes.account_key = accounts.account_key
where notes.credit_memo_id in (select unnest(?::varchar[]))
order by credit_note_number, notes.credit_memo_id
"""


def load_candidates(
    conn: duckdb.DuckDBPyConnection,
    policy: ReviewPolicy,
    invoice_ids: Sequence[str] | None = None,
    credit_note_ids: Sequence[str] = (),
) -> list[ReviewCandidate]:
    """Candidates for the given invoices (all invoices when None) and credit notes."""
    on_hold = _on_hold_expression(conn, policy)
    where, params = "", []
    if invoice_ids is not None:
        where, params = "where ranked.invoice_id in (select unnest(?::varchar[]))", [
            list(invoice_ids)
        ]
    rows = conn.execute(_INVOICES_SQL.format(on_hold=on_hold, where=where), params).fetchall()
    candidates = [
        ReviewCandidate(
            invoice_id=row[0], invoice_number=row[1], account_key=row[2],
            document_kind=INVOICE, currency=row[3], total=_amount(row[4]),
            issue_date=row[5], is_first_invoice=bool(row[6]), customer_on_hold=bool(row[9]),
            account_name=row[7], erp_customer_id=row[8],
        )
        for row in rows
    ]
    if credit_note_ids:
        rows = conn.execute(
            _CREDIT_NOTES_SQL.format(on_hold=on_hold), [list(credit_note_ids)]
        ).fetchall()
        candidates += [
            ReviewCandidate(
                invoice_id=row[0], invoice_number=row[1], account_key=row[2],
                document_kind=CREDIT_NOTE, currency=row[3], total=_amount(row[4]),
                issue_date=row[5], is_first_invoice=False, customer_on_hold=bool(row[8]),
                account_name=row[6], erp_customer_id=row[7],
            )
            for row in rows
        ]
    return candidates


def _amount(value: object) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def _on_hold_expression(conn: duckdb.DuckDBPyConnection, policy: ReviewPolicy) -> str:
    """SQL for the on-hold flag: the policy's dim_accounts column, or false."""
    column = policy.on_hold_flag_column
    if column is None:
        return "false"
    present = conn.execute(
        "select count(*) from information_schema.columns "
        "where table_schema = 'core' and table_name = 'dim_accounts' and column_name = ?",
        [column],
    ).fetchone()[0]
    if not present:
        rule = next(r.id for r in policy.rules
                    if isinstance(r, CustomerOnHold) and r.flag_column == column)
        raise ReviewPolicyError(
            f"review policy {policy.source}: rule `{rule}`, field `flag_column`: "
            f"core.dim_accounts has no column {column!r}; add it to the model or remove "
            "flag_column and list the accounts instead"
        )
    return f'coalesce(try_cast(accounts."{column}" as boolean), false)'
