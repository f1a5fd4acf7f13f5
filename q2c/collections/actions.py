"""What the warehouse says dunning owes each open invoice (`kpi.mart_dunning_actions`).

The mart decides the stage and the suppression; this module reads its rows with what the
channel policy needs to know about each account, and checks that the mart was built for
this run's day and with the stages of the policy in force.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from q2c.collections.policy import DunningPolicy, check_seed
from q2c.delivery.policy import AccountDelivery

ACTIONS_RELATION = "kpi.mart_dunning_actions"
STAGES_RELATION = "staging.dunning_stages"
REMIND = "remind"
HAND_OVER = "hand_over"
SUPPRESSED = "suppressed"
NOT_DUE = "not_due"

_ACTIONS_SQL = f"""
select
    actions.invoice_key, actions.invoice_id, actions.invoice_number, actions.account_key,
    actions.account_name, actions.currency, actions.open_amount, actions.due_date,
    actions.days_past_due, actions.as_of_date, actions.stage_name, actions.stage_audience,
    actions.dunning_action, actions.suppressed_reason, actions.owner_name,
    actions.owner_email, accounts.billing_contact_name, accounts.segment,
    accounts.country_code, accounts.billing_email, accounts.delivery_preference,
    accounts.invoice_delivery_channel, accounts.peppol_participant_id,
    accounts.einvoice_format, accounts.x12_partner, accounts.email_consent
from {ACTIONS_RELATION} as actions
left join core.dim_accounts as accounts on accounts.account_key = actions.account_key
order by actions.days_past_due desc, actions.invoice_number, actions.invoice_key
"""


class DunningError(RuntimeError):
    """The reminders cannot run; the message names what is wrong and what to do."""


@dataclass(frozen=True)
class DunningAction:
    """One open invoice's row of the dunning mart, with its account's delivery facts."""

    invoice_key: str
    invoice_id: str
    invoice_number: str
    account_key: str | None
    account_name: str | None
    currency: str
    open_amount: Decimal
    due_date: dt.date | None
    days_past_due: int
    as_of_date: dt.date
    stage_name: str | None
    stage_audience: str | None
    action: str
    suppressed_reason: str | None
    owner_name: str | None
    owner_email: str | None
    billing_contact_name: str | None
    account: AccountDelivery | None

    @property
    def is_due(self) -> bool:
        """A reminder or a hand-over is due (a stage reached, nothing suppresses it)."""
        return self.action in (REMIND, HAND_OVER)


def load_actions(conn: duckdb.DuckDBPyConnection, as_of: dt.date) -> list[DunningAction]:
    """Every row of the dunning mart, longest overdue first.

    Raises:
        DunningError: The mart is missing, or was built for another day than `as_of`.
    """
    try:
        cursor = conn.execute(_ACTIONS_SQL)
    except duckdb.CatalogException as exc:
        raise DunningError(f"{ACTIONS_RELATION} is not in the warehouse: build the marts "
                           "first (`q2c run`, or dbt build)") from exc
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    built_for = {row["as_of_date"] for row in rows}
    if built_for and built_for != {as_of}:
        raise DunningError(
            f"{ACTIONS_RELATION} was built for {', '.join(map(str, sorted(built_for)))}, not "
            f"for {as_of}: rebuild the marts for this day (dbt var as_of_date) before the "
            "reminders run, so no reminder goes out on yesterday's balances"
        )
    return [_action(row) for row in rows]


def check_stages(conn: duckdb.DuckDBPyConnection, policy: DunningPolicy) -> None:
    """Stop when the stages dbt used differ from the policy in force.

    Raises:
        DunningError: The seed is missing or differs; the message says how to fix it.
    """
    try:
        cursor = conn.execute(
            f"select stage_order, stage_name, days_past_due, audience from {STAGES_RELATION}"
        )
    except duckdb.CatalogException as exc:
        raise DunningError(f"{STAGES_RELATION} is not in the warehouse: run `dbt seed` (the "
                           "nightly build does)") from exc
    names = [column[0] for column in cursor.description]
    problems = check_seed(policy, [dict(zip(names, row, strict=True))
                                   for row in cursor.fetchall()])
    if problems:
        raise DunningError(f"{STAGES_RELATION} does not match the dunning policy: "
                           f"{problems[0]}")


def suppressed_counts(actions: list[DunningAction]) -> dict[str, int]:
    """Invoices whose reached stage is suppressed, by reason."""
    return dict(Counter(action.suppressed_reason for action in actions
                        if action.action == SUPPRESSED))


def _action(row: dict) -> DunningAction:
    account = AccountDelivery.from_row(row) if row["account_key"] is not None else None
    return DunningAction(
        invoice_key=str(row["invoice_key"]), invoice_id=str(row["invoice_id"]),
        invoice_number=str(row["invoice_number"] or row["invoice_id"]),
        account_key=row["account_key"], account_name=row["account_name"],
        currency=str(row["currency"]), open_amount=Decimal(row["open_amount"]),
        due_date=row["due_date"], days_past_due=int(row["days_past_due"]),
        as_of_date=row["as_of_date"], stage_name=row["stage_name"],
        stage_audience=row["stage_audience"], action=str(row["dunning_action"]),
        suppressed_reason=row["suppressed_reason"], owner_name=row["owner_name"],
        owner_email=row["owner_email"], billing_contact_name=row["billing_contact_name"],
        account=account,
    )
