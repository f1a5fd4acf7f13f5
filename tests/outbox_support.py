"""Helpers for the outbox tests, and a worker the fault tests run as a separate process.

As a script it processes an outbox against an SMTP server and prints its report as JSON:

    python tests/outbox_support.py --store ops.sqlite --port 2525 --run-id r1 --lease 2

With --ready and --go it first creates the --ready file and then waits for the --go file,
so a test can start two workers at the same moment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from q2c.delivery.envelope import EMAIL, PORTAL, ChannelReceipt, Envelope
from q2c.delivery.errors import PermanentDeliveryError
from q2c.delivery.mail_transport import SmtpTransport, email_payload
from q2c.delivery.message import build_invoice_email
from q2c.delivery.outbox import (
    Outbox,
    OutboxItem,
    PlannedSend,
    RetryPolicy,
    attempt_key,
    document_key,
)

SENDER = "Northwind Billing <billing@northwind.example>"
DOMAIN = "northwind.example"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
DATE = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def invoice_id(n: int) -> str:
    return f"inv-{n:03d}"


def invoice_number(n: int) -> str:
    return f"INV-2026-{n:04d}"


def recipient(n: int) -> str:
    return f"ap{n}@customer{n}.example"


def email_send(n: int, address: str | None = None) -> PlannedSend:
    """The invoice email of invoice `n`, its Message-ID derived from its attempt key."""
    key = attempt_key(document_key(invoice_id(n)), EMAIL)
    to = address or recipient(n)
    message = build_invoice_email(
        invoice_number=invoice_number(n), recipient=to, sender=SENDER,
        subject=f"Invoice {invoice_number(n)}",
        html_body=f"<p>Invoice <b>{invoice_number(n)}</b> attached.</p>",
        text_body=f"Invoice {invoice_number(n)} attached.", pdf_bytes=PDF,
        pdf_filename=f"{invoice_number(n)}.pdf", message_id_domain=DOMAIN,
        idempotency_key=key, date=DATE,
    )
    return PlannedSend(EMAIL, to, email_payload(message), f"{invoice_number(n)}.eml",
                       "message/rfc822")


def portal_send(n: int) -> PlannedSend:
    return PlannedSend(PORTAL, recipient(n), PDF + f"% {invoice_number(n)}\n".encode(),
                       f"{invoice_number(n)}.pdf", "application/pdf")


def item(n: int, plan: tuple[PlannedSend, ...] | None = None) -> OutboxItem:
    return OutboxItem(
        invoice_id=invoice_id(n), invoice_number=invoice_number(n),
        document_id=f"doc-{n:03d}", account_key=f"acct-{n % 3}",
        plan=plan if plan is not None else (email_send(n),),
        decision={"chosen": [send.channel for send in (plan or (email_send(n),))]},
    )


def message_id(n: int) -> str:
    return f"<invoice.{attempt_key(document_key(invoice_id(n)), EMAIL)}@{DOMAIN}>"


@dataclass
class PortalStub:
    """A portal channel that stores each document as a file in a folder.

    Recipients in `refuse` are refused for good, like a portal without an account for them.
    """

    folder: Path
    refuse: set[str] = field(default_factory=set)
    name: str = "portal:folder"

    def send(self, envelope: Envelope) -> ChannelReceipt:
        if envelope.recipient in self.refuse:
            raise PermanentDeliveryError(f"no portal account for invoice "
                                         f"{envelope.invoice_number}")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{envelope.key[:12]}-{envelope.filename}"
        if not target.exists():
            target.write_bytes(envelope.payload)
        return ChannelReceipt(location=str(target), reference=envelope.key)

    def files(self) -> list[str]:
        return sorted(path.name for path in self.folder.glob("*")) if self.folder.exists() \
            else []


def tiny_retry(**changes) -> RetryPolicy:
    """Fast retries: a few milliseconds of backoff, the next-run deferral just as short."""
    options = {"max_attempts": 2, "base_seconds": 0.005, "max_seconds": 0.01,
               "sleep": time.sleep} | changes
    return RetryPolicy(**options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--lease", type=float, default=300.0)
    parser.add_argument("--ready")
    parser.add_argument("--go")
    args = parser.parse_args(argv)

    if args.ready:
        Path(args.ready).touch()
    if args.go:
        while not Path(args.go).exists():
            time.sleep(0.01)
    outbox = Outbox(Path(args.store), lease_seconds=args.lease)
    transport = SmtpTransport(args.host, args.port, timeout=30)
    report = outbox.process({EMAIL: transport}, args.run_id, retry=tiny_retry())
    sys.stdout.write(json.dumps({
        "worker": report.worker, "counts": report.counts(),
        "sent": sorted(o.invoice_number for o in report.outcomes if o.status == "sent"),
    }) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
