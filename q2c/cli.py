"""The `q2c` command: generate demo data, run the nightly job, print what happened.

Heavy imports (Dagster, dbt, Great Expectations) stay inside the commands that need them,
so `q2c --help` and `q2c generate` start in well under a second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from q2c.collections.cli import add_parser as add_collections_parser
from q2c.portal.cli import add_parser as add_portal_parser
from q2c.settings import PROJECT_ROOT, load_settings


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date like 2026-12-04") from exc


def _cmd_generate(args: argparse.Namespace) -> int:
    from q2c.demo import generate

    settings = load_settings()
    as_of = args.as_of or settings.run_date
    out = Path(args.out).resolve()
    attachments = Path(args.attachments).resolve() if args.attachments else None
    summary = generate(out, seed=args.seed, accounts=args.accounts, as_of=as_of,
                       attachments_dir=attachments, seller_name=settings.seller.name)

    counts = summary.row_counts
    print(f"Demo data written to {out} (seed {args.seed}, as of {as_of}):")
    print(f"  {len(summary.files)} files, {sum(counts.values())} rows: "
          + ", ".join(f"{table} {n}" for table, n in counts.items()))
    print("  invoices by state: "
          + ", ".join(f"{state} {n}" for state, n in summary.invoices_by_state.items()))
    print("  CRM to ERP links: "
          + ", ".join(f"{method} {n}" for method, n in summary.match_methods.items()))
    bad = [f"{kind} ({', '.join(row.doc_number or '/'.join(row.key) for row in rows)})"
           for kind, rows in summary.bad_rows.items()]
    print(f"  deliberately bad rows: {'; '.join(bad)}")
    if attachments is not None:
        print(f"Supporting documents written to {attachments}: "
              + ", ".join(f"{kind.replace('_', ' ')} {len(paths)}"
                          for kind, paths in summary.documents.items()))
    return 0


def _apply_run_environment(args: argparse.Namespace) -> None:
    """Pass command-line choices to the job through the same variables a deployment sets."""
    if args.landing:
        os.environ["Q2C_LANDING_DIR"] = str(Path(args.landing).resolve())
    if args.as_of:
        os.environ["Q2C_AS_OF"] = args.as_of.isoformat()
    if args.mail_channel:
        os.environ["Q2C_MAIL_CHANNEL"] = args.mail_channel
    settings = load_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    _ensure_dagster_home(Path(os.environ["DAGSTER_HOME"]))


def _ensure_dagster_home(dagster_home: Path) -> None:
    """A new DAGSTER_HOME gets q2c's instance settings (telemetry off, q2c logs captured)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_file = dagster_home / "dagster.yaml"
    if not instance_file.exists():
        template = PROJECT_ROOT / "orchestration" / "dagster.yaml"
        instance_file.write_text(template.read_text())


def _cmd_run(args: argparse.Namespace) -> int:
    _apply_run_environment(args)
    from orchestration.run import RunInProgressError, run_nightly

    try:
        result = run_nightly()
    except RunInProgressError as exc:
        print(f"q2c run: {exc}", file=sys.stderr)
        return 2
    print(result.summary)
    print(f"\nSummary saved to {result.summary_path}")
    return 0 if result.success else 1


def _cmd_summary(args: argparse.Namespace) -> int:
    from q2c.report import summary_path

    path = summary_path(load_settings().home)
    if not path.is_file():
        print(f"No run summary at {path} yet: run `q2c run` first.", file=sys.stderr)
        return 1
    print(path.read_text(), end="")
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    """List the review queue, or approve, reject or reopen queued invoices."""
    from q2c.review import ReviewError, ReviewQueue, UnknownInvoiceError, listing

    queue = ReviewQueue(load_settings().ops_store)
    now = dt.datetime.now(dt.UTC)
    try:
        if args.review_command == "list":
            items = queue.items() if args.all else queue.pending()
            print(listing.queue_json(items, now) if args.json
                  else listing.queue_table(items, now, show_decided=args.all))
            if not items and not args.json:
                print(f"(review queue: {queue.store_path})")
        elif args.review_command == "history":
            print(listing.decisions_table(queue.decisions(args.invoice)))
        elif args.review_command == "approve":
            for item in queue.approve(args.invoices, _reviewer(args.by), args.reason, now):
                print(f"Approved {listing.describe(item)} by {item.decided_by} "
                      f"at {item.decided_at:%Y-%m-%d %H:%M} UTC.")
        elif args.review_command == "reject":
            item = queue.reject(args.invoice, _reviewer(args.by), args.reason, now)
            print(f"Rejected {listing.describe(item)} by {item.decided_by} at "
                  f"{item.decided_at:%Y-%m-%d %H:%M} UTC: {item.decision_reason}. "
                  "It will not be delivered.")
        else:
            item = queue.reopen(args.invoice, _reviewer(args.by), args.reason, now)
            print(f"Reopened {listing.describe(item)}: it waits for review again.")
    except UnknownInvoiceError as exc:
        print(f"q2c review: {exc}", file=sys.stderr)
        return 2
    except ReviewError as exc:
        print(f"q2c review: {exc}", file=sys.stderr)
        return 1
    return 0


def _reviewer(by: str | None) -> str:
    """Who decides: --by, else the user logged in to the operating system."""
    if by:
        return by
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        from q2c.review import ReviewError

        raise ReviewError("cannot tell who you are; say it with --by NAME") from None


def _add_review_parser(commands: argparse._SubParsersAction) -> None:
    review = commands.add_parser(
        "review", help="list, approve or reject invoices waiting for review before sending"
    )
    actions = review.add_subparsers(dest="review_command", required=True)
    by_help = "who decides (default: the operating-system user)"

    show = actions.add_parser("list", help="invoices waiting for approval, oldest first")
    show.add_argument("--all", action="store_true", help="include approved and rejected ones")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")

    history = actions.add_parser("history", help="every queue and decision event, in order")
    history.add_argument("invoice", nargs="?", help="only this invoice (number or id)")

    approve = actions.add_parser("approve", help="approve invoices so they can be delivered")
    approve.add_argument("invoices", nargs="+", metavar="INVOICE",
                         help="invoice number as printed, or invoice id")
    approve.add_argument("--by", help=by_help)
    approve.add_argument("--reason", help="optional note kept with the approval")

    reject = actions.add_parser("reject", help="reject an invoice: it will not be delivered")
    reject.add_argument("invoice", metavar="INVOICE")
    reject.add_argument("--reason", required=True, help="what is wrong (kept with the decision)")
    reject.add_argument("--by", help=by_help)

    reopen = actions.add_parser("reopen", help="put a decided invoice back in the queue")
    reopen.add_argument("invoice", metavar="INVOICE")
    reopen.add_argument("--reason", required=True, help="why it is decided again")
    reopen.add_argument("--by", help=by_help)
    review.set_defaults(func=_cmd_review)


def _cmd_outbox(args: argparse.Namespace) -> int:
    """Counts, dead letters, requeueing and the audit chain of the delivery outbox."""
    store = load_settings().ops_store
    if not store.is_file():
        print(f"No outbox at {store} yet: nothing has been queued for delivery "
              "(run `q2c run`, or set Q2C_OPS_STORE).", file=sys.stderr)
        return 2 if args.outbox_command == "requeue" else 0
    from q2c.delivery.outbox import Outbox

    box = Outbox(store)
    if args.outbox_command == "status":
        counts = box.status_counts()
        print(f"Outbox {store}: {sum(counts.values())} documents")
        for status, count in counts.items():
            print(f"  {status:<13} {count:>6}")
        return 0
    if args.outbox_command == "dead-letters":
        return _print_dead_letters(box, as_json=args.json)
    if args.outbox_command == "requeue":
        return _requeue(box, args.invoice, args.by, args.reason)
    return _verify_outbox(box, args.head)


def _print_dead_letters(box, *, as_json: bool) -> int:
    import json

    letters = box.dead_letters()
    if as_json:
        print(json.dumps([
            {"invoice_number": d.invoice_number, "invoice_id": d.invoice_id,
             "document_key": d.document_key, "plan": list(d.plan), "attempts": d.attempts,
             "last_error": d.last_error, "updated_at": d.updated_at}
            for d in letters
        ], indent=2))
        return 0
    if not letters:
        print("No dead letters: every queued document is sent or still on its way.")
        return 0
    print(f"{'invoice':<20} {'plan':<24} {'attempts':>8}  {'key':<12}  last error")
    for d in letters:
        print(f"{d.invoice_number:<20} {' -> '.join(d.plan):<24} {d.attempts:>8}  "
              f"{d.document_key[:12]:<12}  {d.last_error or ''}")
    print(f"\n{len(letters)} dead letters. Fix the cause, then: q2c outbox requeue INVOICE "
          "--by NAME --reason TEXT")
    return 0


def _requeue(box, reference: str, by: str, reason: str) -> int:
    keys = box.document_keys(reference)
    dead = {letter.document_key for letter in box.dead_letters()}
    if len(keys) > 1:
        keys = [key for key in keys if key in dead] or keys
    if not keys:
        print(f"q2c outbox: no document {reference!r} in the outbox: give the invoice number "
              "or document key as `q2c outbox dead-letters` lists it", file=sys.stderr)
        return 2
    if len(keys) > 1:
        print(f"q2c outbox: {reference!r} matches {len(keys)} documents "
              f"({', '.join(key[:12] for key in keys)}): give the document key",
              file=sys.stderr)
        return 2
    try:
        box.requeue_dead_letter(keys[0], by, reason)
    except (ValueError, LookupError) as exc:
        print(f"q2c outbox: {exc}", file=sys.stderr)
        return 1
    print(f"Requeued {reference}: the next run sends it from the first channel of its plan.")
    return 0


def _verify_outbox(box, head: str | None) -> int:
    known_head = None
    if head:
        seq, _, digest = head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            print("q2c outbox: --head takes SEQ:HASH as a run recorded it (chain_head)",
                  file=sys.stderr)
            return 2
        known_head = (int(seq), digest)
    from q2c.delivery.audit import chain_head
    from q2c.opsdb import connect

    problems = box.verify(known_head)
    with connect(box.store_path) as conn:
        seq, digest = chain_head(conn)
    if problems:
        print(f"Audit trail of {box.store_path} is BROKEN ({len(problems)} problems):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"Audit trail intact: {seq} events, each linked to the one before; "
          f"head {seq}:{digest}")
    return 0


def _add_outbox_parser(commands: argparse._SubParsersAction) -> None:
    outbox = commands.add_parser(
        "outbox", help="delivery outbox: counts, dead letters, requeue, audit chain check"
    )
    actions = outbox.add_subparsers(dest="outbox_command", required=True)
    actions.add_parser("status", help="documents in the outbox by status")
    dead = actions.add_parser("dead-letters", help="documents no channel of their plan took")
    dead.add_argument("--json", action="store_true", help="print JSON instead of a table")
    requeue = actions.add_parser(
        "requeue", help="send a dead letter again from its first channel, after a fix"
    )
    requeue.add_argument("invoice", metavar="INVOICE", help="invoice number or document key")
    requeue.add_argument("--by", required=True, help="who requeues it (kept in the audit trail)")
    requeue.add_argument("--reason", required=True, help="what was fixed")
    verify = actions.add_parser("verify", help="check the delivery audit trail's hash chain")
    verify.add_argument("--head", metavar="SEQ:HASH",
                        help="a chain head recorded earlier (catches removed newest events)")
    outbox.set_defaults(func=_cmd_outbox)


def _cmd_einvoice_validate(args: argparse.Namespace) -> int:
    """Check e-invoice files (UBL, CII, Factur-X against the official rules; X12 by q2c's
    X12 validator); exit 1 when any file is rejected."""
    from q2c.einvoice.validate import RulesNotFoundError, validator_for
    from q2c.settings import load_settings

    validator = None
    rejected = 0
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()
            if _looks_like_x12(data):
                ok, verdict, findings = _validate_x12(data)
            else:
                validator = validator or validator_for(load_settings().einvoice_rules_dir)
                ok, verdict, findings = _validate_file(validator, data,
                                                       peppol=not args.no_peppol)
        except RulesNotFoundError as exc:
            print(exc, file=sys.stderr)
            return 2
        except (OSError, ValueError) as exc:
            ok, verdict, findings = False, "unreadable", [str(exc)]
        rejected += not ok
        print(f"{path}: {verdict}")
        for finding in findings[:20]:
            print(f"  {finding}")
    print(f"{len(args.files) - rejected} of {len(args.files)} files valid")
    return 1 if rejected else 0


def _looks_like_x12(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"ISA")


def _validate_x12(data: bytes) -> tuple[bool, str, list[str]]:
    from q2c.x12.validate import validate_x12

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not ASCII at byte {exc.start}: X12 basic and extended "
                         "character sets only") from exc
    findings = validate_x12(text.lstrip())
    lines = [f"{f.code} {f.segment} (segment {f.position}"
             f"{', ' + f.element if f.element else ''}): {f.message}" for f in findings]
    return not findings, ("valid" if not findings else "rejected") + " (X12)", lines


def _validate_file(validator, data: bytes, peppol: bool) -> tuple[bool, str, list[str]]:
    """UBL by its root element, CII as it is, Factur-X by the XML embedded in the PDF."""
    from q2c.einvoice.facturx import read_facturx_xml

    if data.startswith(b"%PDF-"):
        report, label = validator.validate_cii(read_facturx_xml(data)), "Factur-X CII"
    elif not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise ValueError("neither XML, X12 nor a PDF")
    elif b"CrossIndustryInvoice" in data[:2000]:
        report, label = validator.validate_cii(data), "CII"
    else:
        report, label = validator.validate_ubl(data, peppol=peppol), "UBL"
    counts = Counter(f"{f.severity} {f.rule}: {f.message}" for f in report.findings
                     if f.severity == "fatal")
    findings = [text if n == 1 else f"{text} ({n} times)" for text, n in counts.items()]
    checked = ", ".join(report.checked)
    verdict = ("valid" if report.ok else "rejected") + f" ({label}; {checked})"
    return report.ok, verdict, findings


def _add_einvoice_parser(commands: argparse._SubParsersAction) -> None:
    einvoice = commands.add_parser("einvoice", help="e-invoice tools")
    actions = einvoice.add_subparsers(dest="einvoice_command", required=True)
    validate = actions.add_parser(
        "validate", help="check UBL, CII or Factur-X files against the official rules "
                         "(Q2C_EINVOICE_RULES), and X12 810s with q2c's X12 validator")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--no-peppol", action="store_true",
                          help="UBL: the CEN rules only, not the Peppol BIS 3 rules")
    validate.set_defaults(func=_cmd_einvoice_validate)


def _cmd_content(args: argparse.Namespace) -> int:
    """List, check, approve, explain and preview governed content."""
    from q2c.content.registry import ContentError, load_registry

    settings = load_settings()
    content_dir = Path(args.content).resolve() if args.content else settings.content_dir
    try:
        if args.content_command == "approve":
            return _content_approve(content_dir, args)
        registry = load_registry(content_dir)
        if args.content_command == "list":
            return _content_list(registry, args)
        if args.content_command == "check":
            return _content_check(registry)
        on = args.on or settings.run_date
        if args.content_command == "explain":
            return _content_explain(registry, settings, args, on)
        return _content_preview(registry, settings, args, on)
    except ContentError as exc:
        print(f"q2c content: {exc}", file=sys.stderr)
        return 1


def _content_list(registry, args: argparse.Namespace) -> int:
    import json

    entries = [e for e in registry.entries
               if (not args.id or e.id == args.id) and (not args.status or e.status == args.status)]
    if args.json:
        print(json.dumps([
            {"id": e.id, "version": e.version, "kind": e.kind, "status": e.status,
             "slot": e.slot, "effective_from": e.effective_from.isoformat(),
             "effective_to": e.effective_to.isoformat() if e.effective_to else None,
             "targeting": e.targeting.as_dict(), "case": e.case, "placement": e.placement,
             "approved_by": e.approved_by,
             "approved_at": e.approved_at.isoformat() if e.approved_at else None,
             "path": e.path}
            for e in entries
        ], indent=2, ensure_ascii=False))
        return 0
    print(f"{'id':<28} {'ver':>3}  {'kind':<8} {'status':<8} {'effective':<23}  "
          f"{'targeting':<30} approved")
    for e in entries:
        effective = f"{e.effective_from}..{e.effective_to or ''}"
        approved = f"{e.approved_by} {e.approved_at:%Y-%m-%d}" if e.approved_at else "-"
        print(f"{e.id:<28} {e.version:>3}  {e.kind:<8} {e.status:<8} {effective:<23}  "
              f"{e.targeting.describe():<30} {approved}")
    print(f"\n{len(entries)} versions in {registry.root / 'registry.yaml'}")
    return 0


def _content_check(registry) -> int:
    from q2c.content.lock import check_lock

    problems = check_lock(registry)
    if problems:
        print(f"Content lock of {registry.root} is BROKEN ({len(problems)} problems):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    locked = [e for e in registry.entries if e.status in ("approved", "retired")]
    drafts = [e for e in registry.entries if e.status == "draft"]
    files = sum(len(e.sha256) for e in locked)
    from_cms = sum(1 for e in locked if e.origin is not None)
    cms = f" ({from_cms} from a CMS)" if from_cms else ""
    print(f"Content lock intact: {len(locked)} approved or retired versions{cms}, {files} files "
          f"match their recorded sha256; {len(drafts)} drafts, none used by approved content.")
    return 0


def _content_approve(content_dir: Path, args: argparse.Namespace) -> int:
    from q2c.content.lock import approve

    entry = approve(content_dir, args.id, args.version, _reviewer(args.by),
                    effective_from=args.effective_from)
    print(f"Approved {entry.ref} by {entry.approved_by} at {entry.approved_at:%Y-%m-%d %H:%M} "
          f"UTC, in effect from {entry.effective_from}; {len(entry.sha256)} files locked.")
    return 0


def _content_invoice(settings, reference: str):
    """The invoice and its account's segment, from the warehouse the settings point at."""
    from q2c.documents.preview import find_invoice
    from q2c.warehouse import connect

    if not settings.warehouse_path.is_file():
        from q2c.content.registry import ContentError

        raise ContentError(f"no warehouse at {settings.warehouse_path}: run `q2c run` first, "
                           "or point Q2C_WAREHOUSE at one")
    with connect(settings.warehouse_path, read_only=True) as conn:
        return find_invoice(conn, reference, settings.seller)


def _content_explain(registry, settings, args: argparse.Namespace, on: dt.date) -> int:
    from q2c.content.selection import select_content

    doc, segment = _content_invoice(settings, args.invoice)
    selection = select_content(registry, doc, channel=args.channel, on=on,
                               document=args.document, segment=segment)
    print(f"Content for invoice {doc.invoice_number} on {on} ({args.channel}):")
    for line in selection.describe().splitlines():
        print(f"  {line}")
    return 0


def _content_preview(registry, settings, args: argparse.Namespace, on: dt.date) -> int:
    from q2c.documents.preview import preview_file_name, render_preview, write_preview

    entry = _preview_entry(registry, args.id, args.version)
    doc, segment = _content_invoice(settings, args.invoice)
    preview = render_preview(doc, registry, entry, on=on, segment=segment)
    out = Path(args.out) if args.out else Path.cwd() / preview_file_name(doc.invoice_number, entry)
    write_preview(preview, out)
    print(f"Preview of {entry.ref} ({entry.status}) on invoice {doc.invoice_number}, "
          f"watermarked DRAFT: {out}")
    for line in preview.selection.describe().splitlines():
        print(f"  {line}")
    return 0


def _preview_entry(registry, content_id: str, version: int | None):
    """The version asked for; else the newest draft; else the newest version of any status."""
    from q2c.content.registry import ContentNotFoundError

    if version is not None:
        return registry.version(content_id, version)
    versions = registry.versions(content_id)
    if not versions:
        raise ContentNotFoundError(f"no content `{content_id}` in {registry.root}; "
                                   "`q2c content list` shows what is registered")
    drafts = [e for e in versions if e.status == "draft"]
    return (drafts or versions)[-1]


def _add_content_parser(commands: argparse._SubParsersAction) -> None:
    content = commands.add_parser(
        "content", help="governed content: list, check the lock, approve, explain, preview"
    )
    actions = content.add_subparsers(dest="content_command", required=True)
    folder_help = "content folder (default: the settings' content_dir, the repository's)"

    show = actions.add_parser("list", help="every registered version with status and targeting")
    show.add_argument("--id", help="only this content id")
    show.add_argument("--status", choices=["draft", "approved", "retired"])
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")

    check = actions.add_parser(
        "check", help="verify approved and retired files against their recorded sha256")

    approve = actions.add_parser("approve", help="approve a draft: record hashes and approver")
    approve.add_argument("id", metavar="ID")
    approve.add_argument("version", metavar="VERSION", type=int)
    approve.add_argument("--by", help="who approves (default: the operating-system user)")
    approve.add_argument("--effective-from", type=_date,
                         help="first date it is used (default: as the draft says)")

    explain = actions.add_parser(
        "explain", help="which content an invoice gets, and why")
    explain.add_argument("--invoice", required=True, help="invoice number as printed, or id")
    explain.add_argument("--channel", default="pdf", choices=["pdf", "email", "portal", "edi"])
    explain.add_argument("--document", default="invoice",
                         help="template slot: invoice, credit_note, payment_reminder, ...")
    explain.add_argument("--on", type=_date, help="date (default: the run date)")

    preview = actions.add_parser(
        "preview", help="render an invoice with a draft (or any version) in a DRAFT PDF")
    preview.add_argument("id", metavar="ID")
    preview.add_argument("--version", type=int,
                         help="version to preview (default: the newest draft)")
    preview.add_argument("--invoice", required=True, help="invoice number as printed, or id")
    preview.add_argument("--out", help="PDF to write (default: preview-<invoice>-<id>-vN.pdf)")
    preview.add_argument("--on", type=_date, help="date (default: the run date)")
    for action in (show, check, approve, explain, preview):
        action.add_argument("--content", help=folder_help)
    content.set_defaults(func=_cmd_content)


def _cmd_warehouse(args: argparse.Namespace) -> int:
    """Copy the raw layer to the Postgres warehouse, or set up its read-only BI role."""
    import psycopg2

    from q2c.warehouse import WarehouseBusyError
    from q2c.warehouse_postgres import PostgresTarget, PostgresWarehouseError

    if args.warehouse_command == "load-spark":
        return _load_spark()
    try:
        target = PostgresTarget.from_env()
        if args.warehouse_command == "push-postgres":
            return _push_postgres(target)
        return _grant_bi_role(target, args.role, args.password_env, args.revoke_memberships)
    except (PostgresWarehouseError, WarehouseBusyError) as exc:
        print(f"q2c warehouse: {exc}", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        print(f"q2c warehouse: Postgres refused ({type(exc).__name__}): {str(exc).strip()}; "
              f"check that {target.user} may do this in {target.dbname}", file=sys.stderr)
        return 1


def _push_postgres(target) -> int:
    from q2c.warehouse_postgres import push_to_postgres

    settings = load_settings()
    if not settings.warehouse_path.is_file():
        print(f"q2c warehouse: no DuckDB warehouse at {settings.warehouse_path}: run "
              "`q2c run` first, or point Q2C_WAREHOUSE at one", file=sys.stderr)
        return 1
    conn = target.connect()
    try:
        copied = push_to_postgres(settings.warehouse_path, conn)
    finally:
        conn.close()
    print(f"Copied {len(copied)} tables from {settings.warehouse_path} to {target.describe()}:")
    for table in copied:
        print(f"  {table.relation:<40} {table.rows:>9} rows  {table.action}")
    print("Next: dbt build --target postgres --project-dir dbt_project "
          "--profiles-dir dbt_project")
    return 0


def _load_spark() -> int:
    """Copy the raw layer into the Spark metastore of dbt's `spark` target."""
    from q2c.warehouse import WarehouseBusyError
    from q2c.warehouse_spark import SparkWarehouseError, load_into_spark, spark_home, spark_session

    settings = load_settings()
    if not settings.warehouse_path.is_file():
        print(f"q2c warehouse: no DuckDB warehouse at {settings.warehouse_path}: run "
              "`q2c run` first, or point Q2C_WAREHOUSE at one", file=sys.stderr)
        return 1
    try:
        home = spark_home(q2c_home=settings.home)
        loaded = load_into_spark(settings.warehouse_path, spark_session(home))
    except (SparkWarehouseError, WarehouseBusyError) as exc:
        print(f"q2c warehouse: {exc}", file=sys.stderr)
        return 1
    print(f"Loaded {len(loaded)} tables from {settings.warehouse_path} into Spark at {home}:")
    for table in loaded:
        print(f"  {table.relation:<40} {table.rows:>9} rows")
    print(f"Next: Q2C_SPARK_HOME={home} dbt build --target spark --project-dir dbt_project "
          "--profiles-dir dbt_project")
    return 0


def _grant_bi_role(target, role: str, password_env: str | None,
                   revoke_memberships: bool = False) -> int:
    from q2c.warehouse_postgres import grant_bi_role

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            print(f"q2c warehouse: --password-env {password_env}: that variable is empty or "
                  "not set; export the BI role's password in it", file=sys.stderr)
            return 2
    conn = target.connect()
    try:
        grant = grant_bi_role(conn, role, password, revoke_memberships=revoke_memberships)
    finally:
        conn.close()
    login = "can log in" if grant.can_login else "cannot log in (NOLOGIN: grant it to users)"
    print(f"{'Created' if grant.created else 'Updated'} read-only role {grant.role} on "
          f"{target.describe()}; it {login}.")
    print(f"  select on reporting: {len(grant.readable)} relations now, and every view "
          "dbt creates there later")
    print(f"  nothing on: {', '.join(grant.closed_schemas) or '(no other q2c schema yet)'}")
    if grant.changed_attributes:
        print(f"  attributes changed: {' '.join(grant.changed_attributes).upper()}")
    if grant.revoked_memberships:
        print(f"  memberships revoked: {', '.join(grant.revoked_memberships)}")
    if grant.unreadable:
        print(f"  not readable (owned by another role; run this as the user dbt runs as): "
              f"{', '.join(grant.unreadable)}")
    return 0


def _add_warehouse_parser(commands: argparse._SubParsersAction) -> None:
    warehouse = commands.add_parser(
        "warehouse", help="Postgres or Spark warehouse: copy the raw layer, create the BI "
                          "role (Postgres connection from Q2C_PG_HOST/PORT/USER/PASSWORD/"
                          "DBNAME)")
    actions = warehouse.add_subparsers(dest="warehouse_command", required=True)
    actions.add_parser(
        "push-postgres", help="copy the raw_<source> schemas and the q2c_ops tables dbt "
                              "reads from the DuckDB warehouse into Postgres")
    actions.add_parser(
        "load-spark", help="copy the same tables into the Spark metastore of dbt's spark "
                           "target (under Q2C_SPARK_HOME, else $Q2C_HOME/spark; needs "
                           "the [spark] extra and Java 17)")
    grant = actions.add_parser(
        "grant-bi-role", help="create or update a read-only role that sees only the "
                              "reporting schema")
    grant.add_argument("--role", required=True, help="role name, e.g. q2c_bi")
    grant.add_argument("--password-env", metavar="VAR",
                       help="environment variable holding the role's password: the role "
                            "can log in (without it: NOLOGIN, a group for users' logins); "
                            "sent to Postgres only as a SCRAM-SHA-256 verifier")
    grant.add_argument("--revoke-memberships", action="store_true",
                       help="revoke the role's memberships in roles with rights on q2c's "
                            "schemas (such as the table owner's) instead of refusing")
    warehouse.set_defaults(func=_cmd_warehouse)


def _cmd_pull(args: argparse.Namespace) -> int:
    """Pull one source through its API into the landing folder, from its saved cursor."""
    from q2c.settings import load_settings
    from q2c.sources.connectors import pull
    from q2c.sources.connectors.errors import ConnectorError

    settings = load_settings()
    try:
        report = pull(args.source, settings, streams=args.stream or None,
                      full_refresh=args.full_refresh)
    except ConnectorError as exc:
        print(f"q2c pull {args.source}: {exc}", file=sys.stderr)
        return 1

    for name, stream in report.streams.items():
        print(f"{name}: {stream.records} records in {stream.pages} pages")
    for table, rows in sorted(report.files.items()):
        print(f"  {settings.landing_dir / args.source / table}.csv now holds {rows} rows")
    print(f"Next: q2c run --landing {settings.landing_dir} (with {args.source} in Q2C_SOURCES)")
    return 0


def _add_pull_parser(commands) -> None:
    pull = commands.add_parser(
        "pull", help="pull a source's changes through its API into the landing folder",
        description="Writes <landing>/<source>/<table>.csv (Q2C_LANDING_DIR, default "
                    "$Q2C_HOME/landing), incremental by the source's updated-at cursor, saved "
                    "in the ops store after each landed page, so a failed pull resumes where "
                    "it stopped. Streams: hubspot company, contact, deal, line_item, ticket, "
                    "owner, deal_pipeline, ticket_pipeline; salesforce, stripe and quickbooks "
                    "the tables of their raw schema. Credentials come from the environment "
                    "(README, Sources).",
    )
    pull.add_argument("source", choices=["hubspot", "salesforce", "stripe", "quickbooks"])
    pull.add_argument("--stream", action="append", metavar="NAME",
                      help="pull only this stream (repeatable); default: all of the source's")
    pull.add_argument("--full-refresh", action="store_true",
                      help="ignore the saved cursor and pull everything again")
    pull.set_defaults(func=_cmd_pull)


def _cmd_cms(args: argparse.Namespace) -> int:
    """Sync CMS sources into the content store, or take their publish events over HTTP."""
    from q2c.content.cms import build_cms_connector
    from q2c.content.cms.base import CmsError
    from q2c.content.cms.store import CmsStore

    settings = load_settings()
    sources = args.source or list(settings.cms_sources)
    if not sources:
        print("q2c cms: no CMS source is configured; set Q2C_CMS_SOURCES (for example "
              "wordpress) and the connection variables of each source", file=sys.stderr)
        return 2
    try:
        connectors = {name: build_cms_connector(name, settings) for name in sources}
        store = CmsStore.from_settings(settings)
        if args.cms_command == "sync":
            from q2c.content.cms.sync import sync_and_reconcile

            down = 0
            for connector in connectors.values():
                for result in sync_and_reconcile(connector, store, dt.datetime.now(dt.UTC),
                                                 reconcile_all=not args.no_reconcile):
                    print(result.summary())
                    for problem in result.problems:
                        print(f"  - {problem}")
                    down += result.unavailable
            return 1 if down else 0
        from q2c.content.cms.events import make_event_server

        server = make_event_server(connectors, settings.cms_dir, args.host, args.port)
    except CmsError as exc:
        print(f"q2c cms: {exc}", file=sys.stderr)
        return 1
    _stop_on_sigterm()
    host, port = server.server_address[:2]
    print(f"Taking publish events on http://{host}:{port}/<source> for {', '.join(sources)}; "
          f"verified events wait in {settings.cms_dir / 'inbox'} for the sensors (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _add_cms_parser(commands) -> None:
    cms = commands.add_parser(
        "cms", help="content from WordPress, Sitecore and AEM: sync, publish events")
    actions = cms.add_subparsers(dest="cms_command", required=True)
    sync = actions.add_parser(
        "sync", help="record what changed in each source, then reconcile every known item")
    sync.add_argument("--no-reconcile", action="store_true",
                      help="only what changed since the saved cursor")
    events = actions.add_parser("events", help="publish events")
    serve = events.add_subparsers(dest="events_command", required=True).add_parser(
        "serve", help="an HTTP endpoint taking POST /<source> events into the inbox")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default loopback: put a proxy in front)")
    for action in (sync, serve):
        action.add_argument("--source", action="append", metavar="NAME",
                            help="only this source (repeatable); default: Q2C_CMS_SOURCES")
    cms.set_defaults(func=_cmd_cms)


def _cmd_webhooks(args: argparse.Namespace) -> int:
    """Take Stripe webhook events over HTTP, or land the objects they brought."""
    settings = load_settings()
    if args.webhooks_command == "land":
        from q2c.payments.stripe_landing import land_webhook_objects

        report = land_webhook_objects(settings.ops_store, settings.landing_dir)
        if not report.offered:
            print(f"No Stripe object has come by webhook yet (ops store {settings.ops_store}).")
            return 0
        for table, rows in report.offered.items():
            print(f"{table}: {rows} webhook rows offered; {report.folder / table}.csv now "
                  f"holds {report.files[table]} rows")
        return 0

    from q2c.payments.stripe_signature import SecretsMissing, secrets_from_env
    from q2c.payments.stripe_webhooks import PATH, make_webhook_server

    try:
        secrets = secrets_from_env()
    except SecretsMissing as exc:
        print(f"q2c webhooks serve: {exc}", file=sys.stderr)
        return 2
    tolerance = args.tolerance or settings.stripe_webhook_tolerance
    try:
        server = make_webhook_server(settings.ops_store, secrets, args.host, args.port,
                                     tolerance)
    except OSError as exc:
        print(f"q2c webhooks serve: cannot listen on {args.host}:{args.port} ({exc}); "
              "choose another --port or stop what holds it", file=sys.stderr)
        return 1
    _stop_on_sigterm()
    host, port = server.server_address[:2]
    print(f"Taking Stripe events on http://{host}:{port}{PATH} into {settings.ops_store} "
          f"({len(secrets)} signing secret(s), tolerance {tolerance} s; Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _stop_on_sigterm() -> None:
    """Stop a serving command on SIGTERM as on Ctrl-C, closing its socket.

    systemd, Kubernetes and supervisors stop a service with SIGTERM; a process that inherited
    SIGTERM as ignored (or blocked) from its parent would otherwise keep serving until it is
    killed. Called before the address is printed: whoever reads it may stop the server next.
    """
    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _positive_seconds(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number of seconds above 0")
    return int(text)


def _add_webhooks_parser(commands) -> None:
    webhooks = commands.add_parser(
        "webhooks", help="payment events from Stripe: the endpoint, and landing what came",
        description="Stripe events are verified with the signing secret(s) in "
                    "Q2C_STRIPE_WEBHOOK_SECRETS and kept in the ops store; the Stripe load "
                    "(and `land`) writes the objects they carried into the landing folder "
                    "beside the pulled ones. See docs/payments.md.",
    )
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    serve = actions.add_parser(
        "serve", help="the HTTP endpoint Stripe posts events to (POST /stripe)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default loopback: in production the "
                            "reverse proxy forwards the public endpoint URL here)")
    serve.add_argument("--port", type=int, default=8770, help="port (default 8770; 0: any)")
    serve.add_argument("--tolerance", type=_positive_seconds, metavar="SECONDS",
                       help="how far a signature's timestamp may be from now (default "
                            "Q2C_STRIPE_WEBHOOK_TOLERANCE, 300)")
    actions.add_parser(
        "land", help="write the objects events brought into the Stripe landing files now "
                     "(the Stripe load does this before each load)")
    webhooks.set_defaults(func=_cmd_webhooks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="q2c", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what each step did (q2c at INFO, the job's events at INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write deterministic demo CRM and ERP data")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--accounts", type=int, default=60)
    generate.add_argument("--out", default="var/landing", help="landing folder to write")
    generate.add_argument("--as-of", type=_date, help="business date (default today)")
    generate.add_argument("--attachments", metavar="DIR",
                          help="also write contracts, statements of work and proofs of "
                               "delivery as PDFs into this attachment repository folder")
    generate.set_defaults(func=_cmd_generate)

    run = commands.add_parser("run", help="run the nightly quote-to-cash job in-process")
    run.add_argument("--landing", help="landing folder with salesforce/ and quickbooks/")
    run.add_argument("--as-of", type=_date, help="business date (default today)")
    run.add_argument("--mail-channel", choices=["eml", "smtp", "ses"])
    run.set_defaults(func=_cmd_run)

    summary = commands.add_parser("summary", help="print the summary of the last run again")
    summary.set_defaults(func=_cmd_summary)

    _add_review_parser(commands)
    _add_outbox_parser(commands)
    _add_einvoice_parser(commands)
    _add_content_parser(commands)
    _add_warehouse_parser(commands)
    _add_pull_parser(commands)
    _add_cms_parser(commands)
    _add_webhooks_parser(commands)
    add_collections_parser(commands)
    add_portal_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from q2c.settings import ConfigError

    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"q2c: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 0


def _configure_logging(verbose: bool) -> None:
    """Warnings and errors on the console; with --verbose, what q2c did step by step.

    Libraries (Dagster, Great Expectations, WeasyPrint, alembic) set their own loggers to
    INFO or DEBUG, so the level is held on the console handler, not only on the root logger.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    if verbose:
        logging.getLogger("q2c").setLevel(logging.INFO)
        os.environ.setdefault("Q2C_LOG_LEVEL", "INFO")


if __name__ == "__main__":
    sys.exit(main())
