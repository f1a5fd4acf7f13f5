"""Turn provider JSON into raw-table text the way Fivetran lands it.

Every landed value is text: booleans `true`/`false`, numbers exactly as the provider sent
them (parsed as Decimal, never float), nested lists and free-form maps as JSON, timestamps
in UTC as `YYYY-MM-DD HH:MM:SS` (with milliseconds when the provider gives them). Column
names are lower snake case (`BillingStreet` -> `billing_street`, `Product2Id` ->
`product_2_id`, `VAT_Number__c` -> `vat_number_c`, `line1` -> `line_1`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_LETTER_DIGIT = re.compile(r"([A-Za-z])(\d)")


def snake_case(name: str) -> str:
    text = name.replace("__", "_")
    text = _CAMEL_ACRONYM.sub(r"\1_\2", text)
    text = _CAMEL.sub(r"\1_\2", text)
    text = _LETTER_DIGIT.sub(r"\1_\2", text)
    return re.sub(r"_+", "_", text).strip("_").lower()


def loose_name(name: str) -> str:
    """A column name without case or underscores: `x12_partner_c` ~ `X12_Partner__c`."""
    return name.replace("_", "").lower()


def parse_instant(value: object) -> dt.datetime:
    """An ISO 8601 text or epoch seconds as an aware UTC datetime."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        # HubSpot writes epoch milliseconds; seconds stay below 10**11 until year 5138.
        return dt.datetime.fromtimestamp(number / 1000 if number >= 10**11 else number, dt.UTC)
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def utc_text(value: object) -> str | None:
    """A provider timestamp as Fivetran lands it: UTC `YYYY-MM-DD HH:MM:SS[.fff]`."""
    if value is None or value == "":
        return None
    moment = parse_instant(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text


def cursor_text(moment: dt.datetime) -> str:
    """A cursor value that sorts as text in time order (fixed width, UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text(value: Any) -> str | None:
    """One value as landed text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def synced_now() -> str:
    """The `_fivetran_synced` value of rows landed now."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
