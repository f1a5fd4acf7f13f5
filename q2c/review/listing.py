"""How `q2c review` shows the queue: a table for people, JSON for scripts.

Times are shown in UTC with minutes, ages and SLA margins in hours, totals in the
currency's minor units with thousands separators and the currency (`27,417.60 EUR`,
`1,500,000 JPY`), so a reviewer can decide from the list alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from q2c.review.amounts import amount_digits, format_amount
from q2c.review.queue import PENDING, ReviewDecision, ReviewItem


def queue_table(items: Sequence[ReviewItem], now: dt.datetime, show_decided: bool) -> str:
    """The queue as an aligned text table; a sentence when it is empty.

    WAITED is the time from queueing to the decision, or to now while still pending.
    """
    if not items:
        return ("No invoices in the review queue." if show_decided
                else "No invoices wait for review.")
    headers = ["INVOICE", "CUSTOMER", "TOTAL", "QUEUED (UTC)", "WAITED", "SLA"]
    if show_decided:
        headers += ["STATUS", "DECIDED BY", "DECIDED (UTC)", "NOTE"]
    headers.append("REASONS")
    rows = []
    for item in items:
        row = [
            item.invoice_number, item.account_name or item.account_key or "-",
            _total(item), _time(item.queued_at), _hours(item.age_hours(item.decided_at or now)),
            _sla(item, now),
        ]
        if show_decided:
            row += [item.status, item.decided_by or "", _time(item.decided_at),
                    item.decision_reason or ""]
        row.append("; ".join(item.reasons))
        rows.append(row)
    return _table(headers, rows)


def decisions_table(decisions: Sequence[ReviewDecision]) -> str:
    if not decisions:
        return "No review decisions recorded."
    headers = ["#", "INVOICE", "ACTION", "BY", "AT (UTC)", "REASON"]
    rows = [
        [str(d.decision_id), d.invoice_number, d.action, d.actor, _time(d.acted_at),
         d.reason or ""]
        for d in decisions
    ]
    return _table(headers, rows)


def queue_json(items: Sequence[ReviewItem], now: dt.datetime) -> str:
    """The queue as JSON: amounts as text in the currency's minor units (never rounded:
    finer non-zero digits are kept), times as ISO 8601 UTC."""
    return json.dumps([
        {
            "invoice_id": item.invoice_id,
            "invoice_number": item.invoice_number,
            "document_kind": item.document_kind,
            "account_key": item.account_key,
            "account_name": item.account_name,
            "currency": item.currency,
            "total": _exact(item),
            "issue_date": item.issue_date.isoformat() if item.issue_date else None,
            "reasons": list(item.reasons),
            "rule_ids": list(item.rule_ids),
            "status": item.status,
            "queued_at": item.queued_at.isoformat(),
            "sla_hours": item.sla_hours,
            "sla_due_at": item.sla_due_at.isoformat(),
            "sla_breached": item.is_sla_breached(now),
            "age_hours": round(item.age_hours(now), 2),
            "decided_by": item.decided_by,
            "decided_at": item.decided_at.isoformat() if item.decided_at else None,
            "decision_reason": item.decision_reason,
            "policy_version": item.policy_version,
        }
        for item in items
    ], indent=2)


def describe(item: ReviewItem) -> str:
    """`INV-1 (Acme GmbH, 12,500.00 EUR)`: enough to tell which invoice was decided."""
    who = item.account_name or item.account_key or "unknown customer"
    return f"{item.invoice_number} ({who}, {_total(item)})"


def _total(item: ReviewItem) -> str:
    return format_amount(item.total, item.currency, grouped=True)


def _exact(item: ReviewItem) -> str | None:
    """The total as text in the currency's minor units, without the code."""
    return amount_digits(item.total, item.currency) if item.total is not None else None


def _time(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


def _hours(hours: float) -> str:
    """`5.5 h` below two days, `3 d 4 h` from then on."""
    if hours < 48:
        return f"{hours:.1f} h"
    days, rest = divmod(int(hours), 24)
    return f"{days} d {rest} h"


def _sla(item: ReviewItem, now: dt.datetime) -> str:
    if item.status != PENDING:
        met = item.decided_at is not None and item.decided_at <= item.sla_due_at
        return f"{item.sla_hours} h {'met' if met else 'missed'}"
    margin = (item.sla_due_at - now).total_seconds() / 3600
    if margin < 0:
        return f"breached {_hours(-margin)} ago"
    return f"due in {_hours(margin)}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)
    ]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        .rstrip()
        for line in lines
    )
