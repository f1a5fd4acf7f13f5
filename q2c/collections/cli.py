"""`q2c collections`: owners' holds, the dunning policy's stages, a reminder run by hand.

    q2c collections hold ACCOUNT --until 2026-12-31 --reason "renewal talks" [--by NAME]
    q2c collections release ACCOUNT --reason "talks ended" [--by NAME]
    q2c collections holds [--all]
    q2c collections policy [--write-seed]
    q2c collections remind

ACCOUNT is the account key, the CRM account id, the ERP customer id or the exact account
name, looked up in `core.dim_accounts`. Days are the seller's (`seller.timezone`), as the
runs count them. A reason or name is one line of plain text (reason up to 500 characters,
name up to 100); what is printed from the store has its control characters escaped.
Imports stay inside the commands, so `q2c --help` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys

from q2c.settings import Settings, load_settings

_ACCOUNT_KEY = re.compile(r"^[0-9a-f]{32}$")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add `collections` and its subcommands to the `q2c` command."""
    collections = commands.add_parser(
        "collections", help="dunning: owners' holds, the policy's stages, reminders")
    actions = collections.add_subparsers(dest="collections_command", required=True)
    by_help = "who does it (default: the operating-system user)"

    hold = actions.add_parser("hold", help="send an account no reminder until a day")
    hold.add_argument("account", metavar="ACCOUNT",
                      help="account key, CRM account id, ERP customer id or exact name")
    hold.add_argument("--until", required=True, type=_date, metavar="DATE",
                      help="last day of the hold (YYYY-MM-DD), inclusive")
    hold.add_argument("--reason", required=True, help="why (kept with the hold)")
    hold.add_argument("--by", help=by_help)

    release = actions.add_parser("release", help="end an account's hold now")
    release.add_argument("account", metavar="ACCOUNT")
    release.add_argument("--reason", required=True, help="why it ends")
    release.add_argument("--by", help=by_help)

    holds = actions.add_parser("holds", help="the holds in force (with --all, every hold)")
    holds.add_argument("--all", action="store_true", help="include ended and released holds")

    policy = actions.add_parser("policy", help="the dunning stages; check dbt's seed")
    policy.add_argument("--write-seed", action="store_true",
                        help="write dbt_project/seeds/dunning_stages.csv from the policy")

    actions.add_parser("remind", help="queue and send today's due reminders now")
    collections.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch one `q2c collections` subcommand; return the exit code."""
    from q2c.collections.holds import HoldError
    from q2c.collections.policy import PolicyError

    settings = load_settings()
    try:
        if args.collections_command == "hold":
            return _hold(settings, args)
        if args.collections_command == "release":
            return _release(settings, args)
        if args.collections_command == "holds":
            return _list_holds(settings, args.all)
        if args.collections_command == "policy":
            return _policy(settings, args.write_seed)
        return _remind(settings)
    except (HoldError, PolicyError) as exc:
        print(f"q2c collections: {exc}", file=sys.stderr)
        return 2


def _hold(settings: Settings, args: argparse.Namespace) -> int:
    from q2c.collections.holds import NAME_LIMIT, REASON_LIMIT, check_text

    who = check_text(_who(args.by), "--by", NAME_LIMIT)
    check_text(args.reason, "--reason", REASON_LIMIT)
    account_key, name = _account(settings, args.account)
    hold = _hold_list(settings).hold(account_key, args.until, args.reason, who,
                                     account_name=name)
    print(f"Held: {hold.describe()}. No reminder goes to the account through "
          f"{hold.held_until}.")
    _export_holds(settings)
    return 0


def _release(settings: Settings, args: argparse.Namespace) -> int:
    from q2c.collections.holds import NAME_LIMIT, REASON_LIMIT, check_text

    who = check_text(_who(args.by), "--by", NAME_LIMIT)
    check_text(args.reason, "--reason", REASON_LIMIT)
    account_key, _ = _account(settings, args.account)
    try:
        released = _hold_list(settings).release(account_key, who, args.reason)
    except LookupError as exc:
        print(f"q2c collections: {exc}", file=sys.stderr)
        return 2
    for hold in released:
        print(f"Released: {hold.describe()}. Dunning resumes with the next run.")
    _export_holds(settings)
    return 0


def _list_holds(settings: Settings, show_all: bool) -> int:
    from q2c.collections.holds import printable

    today = settings.run_date
    holds = [hold for hold in _hold_list(settings).holds()
             if show_all or hold.in_force_on(today)]
    if not holds:
        print(f"No account is held on {today}." if not show_all else "No holds yet.")
        return 0
    print(f"{'id':>4}  {'until':<10}  {'by':<16}  {'state':<9}  account: reason")
    for hold in holds:
        state = "in force" if hold.in_force_on(today) else (
            "released" if hold.released_at else "ended")
        name = printable(hold.account_name or hold.account_key)
        print(f"{hold.hold_id:>4}  {hold.held_until}  {printable(hold.held_by)[:16]:<16}  "
              f"{state:<9}  {name}: {printable(hold.reason)}")
    return 0


def _hold_list(settings: Settings):
    """The holds of the operational store, on the seller's days."""
    from q2c.collections.holds import HoldList

    return HoldList(settings.ops_store, timezone=settings.seller.timezone)


def _policy(settings: Settings, write_seed: bool) -> int:
    import csv

    from q2c.collections.policy import (
        SEED_FILE,
        PolicyError,
        check_content,
        check_seed,
        load_policy,
    )
    from q2c.content.registry import ContentError, load_registry

    policy = load_policy(settings.dunning_policy_file)
    print(f"Dunning policy {policy.source} v{policy.version}, approved by "
          f"{policy.approved_by} on {policy.approved_at:%Y-%m-%d}, in effect from "
          f"{policy.effective_from}; pay within {policy.pay_within_days} days.")
    for stage in policy.stages:
        channels = ", ".join(stage.channels) if stage.channels else "the customer's policy"
        print(f"  {stage.order}. {stage.name:<14} from day {stage.days_past_due:>3}  to "
              f"{stage.audience:<13}  by {channels}  with {stage.html_template}")
    # As the reminder run does: every stage's templates exist, are approved and in force.
    try:
        content = load_registry(settings.content_dir)
    except ContentError as exc:
        raise PolicyError(f"the policy's templates cannot be checked: {exc}") from exc
    check_content(policy, content, settings.run_date)
    print(f"Every stage's templates are approved and in force on {settings.run_date}.")
    if write_seed:
        SEED_FILE.write_text(policy.seed_csv(), encoding="utf-8")
        print(f"Wrote {SEED_FILE}; rebuild the marts (dbt seed and build) to use it.")
        return 0
    with SEED_FILE.open(newline="", encoding="utf-8") as handle:
        problems = check_seed(policy, list(csv.DictReader(handle)))
    if problems:
        print(f"{SEED_FILE}: {problems[0]}", file=sys.stderr)
        return 1
    print(f"{SEED_FILE} matches the policy.")
    return 0


def _remind(settings: Settings) -> int:
    import uuid

    from q2c.collections.actions import DunningError
    from q2c.collections.reminders import run_reminders

    try:
        report = run_reminders(settings, f"cli-{uuid.uuid4().hex[:12]}")
    except DunningError as exc:
        print(f"q2c collections: {exc}", file=sys.stderr)
        return 1
    counts = report.counts()
    if not report.enabled:
        print(f"Dunning is off (Q2C_DUNNING_ENABLED): {counts['would_queue']} reminders "
              f"would be queued for {report.as_of}; nothing was queued or sent.")
    else:
        print(f"Reminders for {report.as_of}: {counts['queued_now']} queued, "
              f"{counts['sent']} sent, {counts['already_queued']} queued before, "
              f"{counts['failed_retry']} to retry, {counts['dead_letter']} dead letters.")
    print(f"Suppressed: {counts['suppressed_by_reason'] or 'none'}; "
          f"skipped: {counts['skipped_by_reason'] or 'none'}.")
    return 0


def _account(settings: Settings, reference: str) -> tuple[str, str | None]:
    """The account key (and name) a person gave; a bare key when the warehouse cannot say."""
    import duckdb

    from q2c.collections.holds import HoldError, resolve_account
    from q2c.warehouse import WarehouseBusyError, connect

    bare_key = reference.strip() if _ACCOUNT_KEY.match(reference.strip()) else None
    try:
        with connect(settings.warehouse_path, read_only=True) as conn:
            return resolve_account(conn, reference)
    except (WarehouseBusyError, duckdb.IOException, duckdb.CatalogException) as exc:
        if bare_key is not None:
            return bare_key, None
        raise HoldError(f"cannot look {reference!r} up in core.dim_accounts of "
                        f"{settings.warehouse_path} ({exc}); give the account key, or retry "
                        "once the marts are built and no run holds the warehouse") from exc


def _export_holds(settings: Settings) -> None:
    """Copy the holds into the warehouse now, or say that the next run will."""
    from q2c import opsdb
    from q2c.collections.holds import export_holds
    from q2c.warehouse import WarehouseBusyError, connect

    try:
        with opsdb.connect(settings.ops_store) as store, \
                connect(settings.warehouse_path) as conn:
            export_holds(store, conn)
    except WarehouseBusyError:
        print("The warehouse is busy; the next run copies the holds before it builds the "
              "marts (the reminder run reads them from the operational store meanwhile).")


def _who(by: str | None) -> str:
    if by:
        return by
    import getpass

    from q2c.collections.holds import HoldError

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise HoldError("cannot tell who you are; say it with --by NAME") from None


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date like 2026-12-31") from exc
