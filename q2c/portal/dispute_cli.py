"""`q2c portal disputes`: staff work through the disputes customers open in the portal.

    q2c portal disputes list [--all]
    q2c portal disputes show D-12 [--attachment FILE]
    q2c portal disputes review D-12 [--by NAME]
    q2c portal disputes resolve D-12 credited --amount 90.00 [--reason TEXT] [--by NAME]
    q2c portal disputes resolve D-12 corrected [--reason TEXT] [--by NAME]
    q2c portal disputes resolve D-12 rejected --reason TEXT [--by NAME]
    q2c portal disputes send

Each step tells the customer by email (the replies wait in the operational store when the
mail server is down; `send` sends what waits) and copies the disputes into the warehouse
when it is free, so the dunning mart sees them before the next night. What is printed from
the store (the customer's comment above all) has its control characters escaped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from q2c.settings import Settings, load_settings

_NUMBER = re.compile(r"^\s*(?:[Dd]-?)?(\d{1,9})\s*$")


def add_parser(portal_actions: argparse._SubParsersAction) -> None:
    """Add `disputes` and its subcommands under `q2c portal`."""
    disputes = portal_actions.add_parser(
        "disputes", help="disputes customers opened in the portal: list, review, resolve")
    actions = disputes.add_subparsers(dest="disputes_command", required=True)
    by_help = "who does it (default: the operating-system user)"

    listing = actions.add_parser("list", help="disputes not resolved yet, oldest first")
    listing.add_argument("--all", action="store_true", help="resolved disputes too")

    show = actions.add_parser("show", help="one dispute with the customer's comment")
    show.add_argument("dispute", type=_dispute_number, metavar="D-NUMBER")
    show.add_argument("--attachment", type=Path, metavar="FILE",
                      help="write the customer's attachment to FILE")

    review = actions.add_parser("review", help="take an open dispute under review")
    review.add_argument("dispute", type=_dispute_number, metavar="D-NUMBER")
    review.add_argument("--by", help=by_help)

    resolve = actions.add_parser("resolve", help="resolve a dispute; the customer is told")
    resolve.add_argument("dispute", type=_dispute_number, metavar="D-NUMBER")
    resolve.add_argument("resolution", choices=["credited", "corrected", "rejected"])
    resolve.add_argument("--amount", help="the credit, in the invoice currency (credited)")
    resolve.add_argument("--reason", help="why, as the customer reads it (required to "
                                          "reject; a note otherwise)")
    resolve.add_argument("--by", help=by_help)

    actions.add_parser("send", help="send the replies that wait for the mail server")
    disputes.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch one `q2c portal disputes` subcommand; return the exit code."""
    from q2c.portal.disputes import DisputeError

    settings = load_settings()
    try:
        if args.disputes_command == "list":
            return _list(settings, args.all)
        if args.disputes_command == "show":
            return _show(settings, args.dispute, args.attachment)
        if args.disputes_command == "send":
            return _send(settings)
        return _change(settings, args)
    except (DisputeError, LookupError) as exc:
        _say(f"q2c portal disputes: {exc}", error=True)
        return 2


def _list(settings: Settings, show_all: bool) -> int:
    from q2c.collections.holds import printable
    from q2c.portal.disputes import OPEN, RESOLVED, UNDER_REVIEW

    book = _book(settings)
    statuses = (OPEN, UNDER_REVIEW, RESOLVED) if show_all else (OPEN, UNDER_REVIEW)
    disputes = book.listing(statuses)
    if not disputes:
        _say("No dispute is waiting." if not show_all else "No disputes yet.")
        return 0
    numbers = [printable(dispute.invoice_number) for dispute in disputes]
    width = max(len("invoice"), *(len(number) for number in numbers))
    _say(f"{'dispute':<8}  {'opened':<10}  {'status':<12}  {'invoice':<{width}}  reason")
    for dispute, number in zip(disputes, numbers, strict=True):
        state = dispute.status if dispute.resolution is None else dispute.resolution
        line = f", line {dispute.line_number}" if dispute.line_number is not None else ""
        _say(f"{dispute.reference:<8}  {dispute.opened_at:%Y-%m-%d}  {state:<12}  "
             f"{number:<{width}}  {dispute.reason_code}{line}")
    return 0


def _show(settings: Settings, number: int, attachment: Path | None) -> int:
    from q2c.collections.holds import printable

    book = _book(settings)
    dispute = book.by_number(number)
    _say(f"{dispute.reference}: invoice {printable(dispute.invoice_number)} of account "
         f"{dispute.account_key}, {dispute.status}"
         + (f" ({dispute.resolution})" if dispute.resolution else ""))
    label = book.reasons.get(dispute.reason_code).label("en")
    _say(f"reason: {dispute.reason_code} ({label})")
    if dispute.line_number is not None:
        _say(f"line {dispute.line_number}: {printable(dispute.line_description or '')} "
             f"({dispute.disputed_amount})")
    _say(f"opened {dispute.opened_at:%Y-%m-%d %H:%M} UTC by {dispute.opened_by}; "
         f"staff steps: {dispute.staff_step_count}")
    if dispute.credit_amount is not None:
        _say(f"credit: {dispute.credit_amount}")
    if dispute.resolution_note:
        _say(f"reason given: {printable(dispute.resolution_note)}")
    _say("comment:")
    for text in (dispute.comment or "(none)").splitlines() or [""]:
        _say(f"  {printable(text)}")
    if dispute.attachment is not None:
        _say(f"attachment: {dispute.attachment.name} ({dispute.attachment.content_type}, "
             f"{dispute.attachment.size:,} bytes)")
        if attachment is not None:
            attachment.write_bytes(book.attachment_bytes(dispute))
            _say(f"written to {attachment}")
    return 0


def _change(settings: Settings, args: argparse.Namespace) -> int:
    book = _book(settings)
    by = args.by or _who()
    if args.disputes_command == "review":
        dispute = book.review(args.dispute, by)
        _say(f"{dispute.reference} of invoice {dispute.invoice_number} is under review.")
    else:
        dispute = book.resolve(args.dispute, by, args.resolution, amount=args.amount,
                               reason=args.reason)
        credit = f", credit {dispute.credit_amount} requested from the ERP" if (
            dispute.credit_amount is not None) else ""
        _say(f"{dispute.reference} of invoice {dispute.invoice_number} is resolved "
             f"({dispute.resolution}){credit}.")
    _send(settings)
    _export(settings)
    return 0


def _send(settings: Settings) -> int:
    from q2c.portal.dispute_replies import send_replies

    counts = send_replies(settings)
    _say(f"Replies to customers: {counts['sent']} sent, {counts['waiting']} waiting for the "
         f"mail server, {counts['given_up']} given up.")
    return 0


def _export(settings: Settings) -> None:
    """Copy the disputes into the warehouse now, or say that the next run will."""
    from q2c import opsdb
    from q2c.portal.disputes import export_disputes
    from q2c.warehouse import WarehouseBusyError, connect

    try:
        with opsdb.connect(settings.ops_store) as store, \
                connect(settings.warehouse_path) as conn:
            export_disputes(store, conn)
    except WarehouseBusyError:
        _say("The warehouse is busy; the next run copies the disputes before it builds the "
             "marts (reminders read them from the operational store meanwhile).")


def _book(settings: Settings):
    from q2c.portal.dispute_replies import dispute_book

    return dispute_book(settings)


def _who() -> str:
    import getpass

    from q2c.portal.disputes import DisputeError

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise DisputeError("cannot tell who you are; say it with --by NAME") from None


def _dispute_number(text: str) -> int:
    found = _NUMBER.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"`{text}` is not a dispute like D-12")
    return int(found.group(1))


def _say(text: str, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(text + "\n")
