"""A customer's own delivery changes, confirmed in the customer portal.

The portal (`q2c.portal.contacts`) writes here what a customer changed and confirmed: a
billing address confirmed from that address, a delivery preference chosen with the
customer's consent. They live in the operational store (`delivery_overrides`, one row per
account, the latest change of each field) and win over what the CRM and the ERP say; the
channel policy applies them before its rules (`q2c.delivery.policy.load_policy(...,
ops_store=...)`). A change that is not confirmed is never written here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q2c import opsdb

OVERRIDES_TABLE = "delivery_overrides"
OVERRIDES_DDL = f"""
create table if not exists {OVERRIDES_TABLE} (
    account_key text primary key,
    billing_email text,
    delivery_preference text,
    email_consent integer,
    changed_at text not null,
    changed_by text not null
);
"""


@dataclass(frozen=True)
class DeliveryOverride:
    """What a customer changed and confirmed; None keeps the CRM's or the ERP's value.

    Attributes:
        billing_email: The billing address, confirmed from that address.
        preference: The delivery preference the customer chose (email or portal).
        email_consent: The customer's consent to email, given with the preference.
        changed_at: When (UTC, ISO 8601), for the decision record.
    """

    account_key: str
    billing_email: str | None = None
    preference: str | None = None
    email_consent: bool | None = None
    changed_at: str = ""

    def apply(self, account: Any) -> Any:
        """The account (a `q2c.delivery.policy.AccountDelivery`) with this change applied."""
        return dataclasses.replace(
            account, email=self.billing_email or account.email,
            preference=self.preference or account.preference,
            email_consent=(account.email_consent if self.email_consent is None
                           else self.email_consent),
        )


def load_overrides(ops_store: Path) -> dict[str, DeliveryOverride]:
    """The confirmed changes by account; none when the store has none (or no store yet)."""
    if not Path(ops_store).exists():
        return {}
    with opsdb.connect(ops_store) as conn:
        if conn.execute("select 1 from sqlite_master where type = 'table' and name = ?",
                        (OVERRIDES_TABLE,)).fetchone() is None:
            return {}
        rows = conn.execute(f"select * from {OVERRIDES_TABLE}").fetchall()
    return {row["account_key"]: DeliveryOverride(
        account_key=row["account_key"], billing_email=row["billing_email"],
        preference=row["delivery_preference"],
        email_consent=None if row["email_consent"] is None else bool(row["email_consent"]),
        changed_at=row["changed_at"]) for row in rows}
