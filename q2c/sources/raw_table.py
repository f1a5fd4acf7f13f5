"""One raw table as landed: its source, name, key and the columns q2c reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawTable:
    """One landed table. `required` tables are the ones invoices cannot be printed without:
    when such a file is missing or unreadable the night stops, rather than send invoices
    without their lines or tax."""

    source: str
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    soft_delete_column: str | None = None
    required: bool = False

    @property
    def schema(self) -> str:
        return f"raw_{self.source}"

    @property
    def relation(self) -> str:
        return f'{self.schema}."{self.name}"'

    def file_names(self) -> list[str]:
        """Names a landed export of this table may carry, preferred first.

        `account.csv` is q2c's own layout; `sf_account_data.csv` and `invoice_data.csv` are
        the names Fivetran's package seeds use, so those exports load unchanged.
        """
        prefix = "sf_" if self.source == "salesforce" else ""
        return [f"{self.name}.csv", f"{prefix}{self.name}_data.csv"]


def columns(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SYNC = "_fivetran_synced"
