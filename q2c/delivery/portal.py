"""Portal delivery: publish the invoice to the portal's store, then mail a notice with a link.

The portal application comes later (its own issue); what it will read is defined here.
`PortalStore` is a folder:

    <root>/<account_key>/<invoice_number>/<filename>       the document, written once
    <root>/<account_key>/index/<token>.json                one entry per publication
    <root>/.link-secret                                    the key that makes tokens

The link in the notice is `<base_url>/documents/<token>`. The token is an HMAC of the
delivery's idempotency key under a random secret kept in the store, so it cannot be guessed
from an invoice number or key, and it can be computed before publishing: the notice is
built when the delivery is queued (its bytes are fixed then), the document is published
when it is sent, and both name the same token. The portal issue adds expiry and revocation
of links (and sign-in); the index entry already records when each link was issued.

Publishing is idempotent: the same key publishes once, and a second key for the same
document reuses the file. A different document under the same invoice number and file name
is refused, because an issued invoice is never replaced (a correction is a credit note).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.envelope import EMAIL, PORTAL, Channel, ChannelReceipt, Envelope
from q2c.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from q2c.delivery.message import IDEMPOTENCY_HEADER, INVOICE_NUMBER_HEADER, message_id_for

logger = logging.getLogger(__name__)

ACCOUNT_HEADER = "X-Q2C-Account-Key"
NOTICE_KEY_SUFFIX = "-notice"
_SECRET_FILE = ".link-secret"
_TOKEN_LABEL = b"q2c-portal-link-v1\x1f"
_UNSAFE_PART = re.compile(r"[^A-Za-z0-9._@+-]")
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{12,128}")


@dataclass(frozen=True)
class PortalPublication:
    """A document published in the portal.

    Attributes:
        link: The customer's link, `<base_url>/documents/<token>` (the path alone,
            `/documents/<token>`, when the store was asked without a base URL).
        path: Where the document file is.
        token: The unguessable part of the link.
        key: The delivery's idempotency key.
        sha256: Hex digest of the document bytes.
        published_at: When this key was first published (UTC, ISO 8601).
        new: False when the key had been published before and nothing was written.
    """

    link: str
    path: Path
    token: str
    key: str
    sha256: str
    published_at: str
    new: bool = True


@dataclass(frozen=True)
class PortalDocument:
    """One index entry, as the portal will list it for an account."""

    account_key: str
    invoice_number: str
    invoice_id: str
    document_id: str
    filename: str
    content_type: str
    path: Path
    token: str
    key: str
    sha256: str
    size: int
    published_at: str


class PortalStore:
    """The folder the portal reads published documents from (Settings.portal_store).

    Args:
        root: The store folder.
        secret: The key for link tokens. Omitted, it is read from `<root>/.link-secret`,
            which is created with 32 random bytes on first use; keep that file when the
            store is moved, or every link already mailed stops working.
    """

    def __init__(self, root: Path | str, secret: bytes | None = None) -> None:
        self.root = Path(root)
        self._secret = secret

    def token_for(self, key: str) -> str:
        """The link token of a delivery key: the same key always gives the same token."""
        digest = hmac.new(self._link_secret(), _TOKEN_LABEL + key.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def publish(
        self,
        account_key: str,
        invoice_number: str,
        document: bytes,
        filename: str,
        key: str,
        *,
        base_url: str = "",
        invoice_id: str = "",
        document_id: str = "",
        content_type: str = "application/pdf",
    ) -> PortalPublication:
        """Store `document` once and record an index entry for `key`.

        The file is written to a temporary name and linked into place, then the entry is
        written the same way, so the portal never lists a document whose file is missing
        or half written.

        Raises:
            ValueError: An argument cannot name a file (empty, '..', a bad key).
            PermanentDeliveryError: Another document is already published under this
                invoice number and file name, or the store is not writable.
            TransientDeliveryError: Writing failed for another reason (disk full, say).
        """
        token = self.token_for(_checked_key(key, invoice_number))
        entry_path = self._account_dir(account_key) / "index" / f"{token}.json"
        existing = _read_entry(entry_path)
        if existing is not None:
            logger.info("invoice %s already published in the portal for this key; kept",
                        invoice_number)
            return PortalPublication(
                link=_link(base_url, token), path=self.root / existing["path"], token=token,
                key=key, sha256=existing["sha256"], published_at=existing["published_at"],
                new=False,
            )

        target = self._account_dir(account_key) / _part(invoice_number, "invoice number")
        target = target / _part(filename, "file name")
        sha256 = hashlib.sha256(document).hexdigest()
        published_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        entry = {
            "account_key": account_key, "invoice_number": invoice_number,
            "invoice_id": invoice_id, "document_id": document_id, "filename": filename,
            "content_type": content_type, "path": str(target.relative_to(self.root)),
            "token": token, "key": key, "sha256": sha256, "size": len(document),
            "published_at": published_at,
        }
        try:
            self._store_document(target, document, sha256, invoice_number)
            _write_file(entry_path, json.dumps(entry, indent=2).encode(), replace=True)
        except PermissionError as exc:
            raise PermanentDeliveryError(
                f"cannot write invoice {invoice_number} to the portal store {self.root}: "
                "make it writable by this process (Q2C_PORTAL_DIR)"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(
                f"publishing invoice {invoice_number} to {self.root} failed "
                f"({exc.strerror or exc}): check free disk space and the mount"
            ) from exc
        logger.info("invoice %s published in the portal at %s", invoice_number, target)
        return PortalPublication(
            link=_link(base_url, token), path=target, token=token, key=key, sha256=sha256,
            published_at=published_at,
        )

    def list_documents(self, account_key: str) -> list[PortalDocument]:
        """Every document published for an account, oldest first."""
        index = self._account_dir(account_key) / "index"
        entries = [_read_entry(path) for path in sorted(index.glob("*.json"))]
        documents = [self._document(entry) for entry in entries if entry is not None]
        return sorted(documents, key=lambda doc: (doc.published_at, doc.invoice_number))

    def find(self, token: str) -> PortalDocument | None:
        """The document a link token points to, or None for an unknown token."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{20,100}", token):
            return None
        for path in self.root.glob(f"*/index/{token}.json"):
            entry = _read_entry(path)
            if entry is not None:
                return self._document(entry)
        return None

    def _document(self, entry: dict) -> PortalDocument:
        fields = {name: entry[name] for name in PortalDocument.__dataclass_fields__
                  if name != "path"}
        return PortalDocument(path=self.root / entry["path"], **fields)

    def _account_dir(self, account_key: str) -> Path:
        return self.root / _part(account_key, "account key")

    def _store_document(
        self, target: Path, document: bytes, sha256: str, invoice_number: str
    ) -> None:
        if not _write_file(target, document, replace=False):
            if hashlib.sha256(target.read_bytes()).hexdigest() != sha256:
                raise PermanentDeliveryError(
                    f"a different document is already published as {target.name} for "
                    f"invoice {invoice_number}: an issued invoice is not replaced; publish a "
                    "credit note or a corrected invoice under its own number"
                )
            logger.info("invoice %s: the same document was published before; reused",
                        invoice_number)

    def _link_secret(self) -> bytes:
        if self._secret is None:
            path = self.root / _SECRET_FILE
            if not path.is_file():
                _write_file(path, secrets.token_bytes(32), replace=False, mode=0o600)
            self._secret = path.read_bytes()
        return self._secret


class PortalChannel:
    """Deliver PORTAL envelopes: publish the document, then send the notice email.

    The envelope's `notice` is the notification message built with
    `portal_notice_message` when the delivery was queued; it must carry the account key
    header and the link this store gives the envelope's key (`link_for`). The notice goes
    out through `mail` as an EMAIL envelope keyed `notice_key(key)`, the key its Message-ID
    and idempotency header were built from, so the email transports accept it and a bounce
    of the notice leads back to this portal delivery (see `q2c.delivery.bounces`).
    An error of the mail transport is raised as it is: a transient one is retried (the
    publication is kept and reused), a permanent one fails over to the next channel.
    """

    name = "portal:folder"

    def __init__(self, store: PortalStore, base_url: str, mail: Channel) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.mail = mail

    def link_for(self, key: str) -> str:
        """The link the notice for delivery `key` must carry."""
        return _link(self.base_url, self.store.token_for(key))

    def send(self, envelope: Envelope) -> ChannelReceipt:
        """Publish `envelope.payload` and mail `envelope.notice` to `envelope.recipient`."""
        if envelope.channel != PORTAL:
            raise ValueError(
                f"PortalChannel delivers portal envelopes, not {envelope.channel!r} "
                f"(invoice {envelope.invoice_number})"
            )
        recipient = validate_recipient(envelope.recipient)
        notice = _parsed_notice(envelope)
        account_key = (envelope.headers.get(ACCOUNT_HEADER)
                       or str(notice.get(ACCOUNT_HEADER, "")).strip())
        if not account_key:
            raise PermanentDeliveryError(
                f"the portal delivery of invoice {envelope.invoice_number} names no account: "
                f"build the notice with portal_notice_message (it sets {ACCOUNT_HEADER})"
            )
        link = self.link_for(envelope.key)
        if link not in _text_of(notice):
            raise PermanentDeliveryError(
                f"the portal notice for invoice {envelope.invoice_number} does not carry the "
                f"link {link}: the store's link secret changed since it was queued; queue "
                "the delivery again"
            )
        self.store.publish(
            account_key, envelope.invoice_number, envelope.payload, envelope.filename,
            envelope.key, base_url=self.base_url, invoice_id=envelope.invoice_id,
            document_id=envelope.document_id, content_type=envelope.content_type,
        )
        receipt = self.mail.send(_notice_envelope(envelope, recipient))
        logger.info("portal notice for invoice %s sent to %s via %s",
                    envelope.invoice_number, mask_address(recipient), self.mail.name)
        return ChannelReceipt(location=link, reference=receipt.reference)


def portal_notice_message(
    *,
    invoice_number: str,
    account_key: str,
    recipient: str,
    sender: str,
    link: str,
    key: str,
    message_id_domain: str,
    subject: str | None = None,
    customer_name: str | None = None,
    seller_name: str | None = None,
    date: dt.datetime | None = None,
) -> EmailMessage:
    """Build the notice that a document is waiting in the portal (plain text and HTML).

    `key` is the portal delivery's key. The notice is an email of its own, keyed
    `notice_key(key)`: its Message-ID and idempotency header carry that key, which a bounce
    reader maps back to the portal delivery. Send the bytes of
    `message.as_bytes(policy=email.policy.SMTP)` as the envelope's `notice`.

    Raises:
        InvalidRecipientError: The recipient is not a deliverable address.
        ValueError: The key or link cannot be used.
    """
    address = validate_recipient(recipient)
    _checked_key(key, invoice_number)
    if not link.startswith(("https://", "http://")):
        raise ValueError(f"portal link {link!r} for invoice {invoice_number} is not a URL: "
                         "use PortalChannel.link_for(key)")
    greeting = f"Dear {customer_name}," if customer_name else "Hello,"
    from_whom = seller_name or "us"
    text = (
        f"{greeting}\n\n"
        f"Invoice {invoice_number} from {from_whom} is ready in the customer portal:\n\n"
        f"{link}\n\n"
        "You can view, download and pay it there. This message was sent automatically.\n"
    )
    body = (
        f"<p>{html.escape(greeting)}</p>"
        f"<p>Invoice <strong>{html.escape(invoice_number)}</strong> from "
        f"{html.escape(from_whom)} is ready in the customer portal.</p>"
        f'<p><a href="{html.escape(link, quote=True)}">View invoice '
        f"{html.escape(invoice_number)}</a></p>"
        f"<p>{html.escape(link)}</p>"
        "<p>You can view, download and pay it there. "
        "This message was sent automatically.</p>"
    )

    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = subject or f"Invoice {invoice_number} is ready in your portal"
    message["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    message["Message-ID"] = message_id_for(notice_key(key), message_id_domain)
    message[IDEMPOTENCY_HEADER] = notice_key(key)
    message[INVOICE_NUMBER_HEADER] = invoice_number
    message[ACCOUNT_HEADER] = account_key
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(f"<!doctype html><html><body>{body}</body></html>", subtype="html")
    return message


def notice_key(key: str) -> str:
    """The key of the notice email of portal delivery `key`: the key plus `-notice`."""
    if len(key) > 128 - len(NOTICE_KEY_SUFFIX):
        raise ValueError(f"portal delivery key {key[:12]}... is too long to derive a notice "
                         "key from: keys are at most 121 characters")
    return key + NOTICE_KEY_SUFFIX


def portal_key_of(key: str) -> str | None:
    """The portal delivery key a notice key was derived from, or None for other keys."""
    base = key.removesuffix(NOTICE_KEY_SUFFIX)
    return base if base != key and _KEY_PATTERN.fullmatch(base) else None


def _notice_envelope(envelope: Envelope, recipient: str) -> Envelope:
    return Envelope(
        key=notice_key(envelope.key),
        invoice_id=envelope.invoice_id,
        invoice_number=envelope.invoice_number,
        document_id=envelope.document_id,
        channel=EMAIL,
        recipient=recipient,
        payload=envelope.notice or b"",
        filename=f"{Path(envelope.filename).stem}-portal-notice.eml",
        content_type="message/rfc822",
    )


def _parsed_notice(envelope: Envelope) -> EmailMessage:
    if not envelope.notice:
        raise PermanentDeliveryError(
            f"the portal delivery of invoice {envelope.invoice_number} has no notice: queue "
            "it with the message from portal_notice_message"
        )
    return BytesParser(policy=policy.default).parsebytes(envelope.notice)


def _text_of(message: EmailMessage) -> str:
    """The decoded text of every text part, where the link must appear."""
    parts = [part.get_content() for part in message.walk()
             if part.get_content_maintype() == "text"]
    return "\n".join(str(part) for part in parts)


def _link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/documents/{token}"


def _checked_key(key: str, invoice_number: str) -> str:
    if not _KEY_PATTERN.fullmatch(key):
        raise ValueError(
            f"delivery key for invoice {invoice_number} must be 12 to 128 letters, digits, "
            "'-' or '_': use the outbox's key"
        )
    return key


def _part(value: str, what: str) -> str:
    """One safe path component: unusual characters become '_', '.' and '..' are refused."""
    cleaned = _UNSAFE_PART.sub("_", (value or "").strip())[:120]
    if cleaned in {"", ".", ".."} or cleaned.startswith("."):
        raise ValueError(f"{what} {value!r} cannot name a folder or file in the portal store")
    return cleaned


def _read_entry(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _write_file(target: Path, payload: bytes, *, replace: bool, mode: int = 0o644) -> bool:
    """Write `payload` to `target` through a temporary file; return False if it existed.

    With `replace=False` an existing `target` is kept (hard links fail on an existing
    name, so two writers cannot both create it); with `replace=True` it is swapped
    atomically.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp_name, target)
            return True
        try:
            os.link(temp_name, target)
        except FileExistsError:
            return False
        except OSError:
            # File systems without hard links: rename, after a last look for the target.
            if target.exists():
                return False
            os.replace(temp_name, target)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
