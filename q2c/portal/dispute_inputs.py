"""What a customer gives when disputing an invoice, checked before anything is stored.

The reason codes are data (`content/portal/dispute_reasons.yaml`, a label per language);
the line a customer names is one the invoice printed; the comment is plain text within its
limit, kept exactly as written; the attachment is a PDF, PNG or JPEG recognised from its
bytes, whatever its name or declared type says, and downloads under a name q2c makes.
`q2c.portal.disputes` keeps what passes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from q2c.content.registry import language_chain

REASONS_FILE = Path("portal") / "dispute_reasons.yaml"
COMMENT_LIMIT = 2000
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
# What a download may be: (MIME type, file extension) by the bytes it starts with.
PDF = ("application/pdf", "pdf")
PNG = ("image/png", "png")
JPEG = ("image/jpeg", "jpg")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Comment characters refused: the C0 and C1 controls except tab and line breaks, and the
# characters that reorder text on screen. Everything else is kept as written.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class DisputeError(ValueError):
    """A dispute cannot be opened or changed; the message says what to give instead.

    `key` names the portal text that says it to a customer (None: staff only).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# --- reason codes ------------------------------------------------------------------------

@dataclass(frozen=True)
class DisputeReason:
    """One reason code and what the customer reads for it, per language."""

    code: str
    labels: Mapping[str, str]
    names_line: bool = False
    comment_required: bool = False
    retired: bool = False

    def label(self, language: str | None) -> str:
        """The label in `language`, along the chain `de-AT -> de -> en`."""
        for tag in language_chain(language):
            if tag in self.labels:
                return self.labels[tag]
        return self.labels["en"]


@dataclass(frozen=True)
class ReasonCatalog:
    """The reason codes of one version of the reasons file."""

    version: int
    source: str
    reasons: tuple[DisputeReason, ...]

    def get(self, code: str) -> DisputeReason:
        """The reason with `code`, retired or not.

        Raises:
            DisputeError: No reason has that code.
        """
        for reason in self.reasons:
            if reason.code == code:
                return reason
        raise DisputeError(f"dispute reason {code!r} is not in {self.source}: choose one of "
                           f"{', '.join(r.code for r in self.offered())}",
                           key="dispute_error_reason")

    def offered(self) -> tuple[DisputeReason, ...]:
        """The reasons a customer may choose now (not retired), in the file's order."""
        return tuple(reason for reason in self.reasons if not reason.retired)


def load_reasons(content_dir: Path) -> ReasonCatalog:
    """Read `content/portal/dispute_reasons.yaml`.

    Raises:
        DisputeError: The file is missing or not as its header describes; the message
            names the file and the entry.
    """
    path = Path(content_dir) / REASONS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DisputeError(f"cannot read the dispute reasons {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("reasons"), list):
        raise DisputeError(f"{path} must be a mapping with a list under 'reasons'")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise DisputeError(f"{path}: version must be a whole number of at least 1")
    reasons = tuple(_reason(item, number, path)
                    for number, item in enumerate(data["reasons"], start=1))
    codes = [reason.code for reason in reasons]
    twice = sorted({code for code in codes if codes.count(code) > 1})
    if twice:
        raise DisputeError(f"{path}: reason code(s) {', '.join(twice)} appear twice")
    return ReasonCatalog(version=version, source=str(path), reasons=reasons)


def _reason(item: object, number: int, path: Path) -> DisputeReason:
    where = f"{path}: reason {number}"
    if not isinstance(item, dict):
        raise DisputeError(f"{where} is not a mapping with code and labels")
    code = item.get("code")
    if not isinstance(code, str) or not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", code):
        raise DisputeError(f"{where}: code must be lower-case letters, digits and _")
    labels = item.get("labels")
    if not isinstance(labels, dict) or not isinstance(labels.get("en"), str):
        raise DisputeError(f"{where} ({code}) needs labels with at least an English one (en)")
    return DisputeReason(
        code=code, labels={str(k): str(v) for k, v in labels.items()},
        names_line=bool(item.get("names_line", False)),
        comment_required=bool(item.get("comment_required", False)),
        retired=bool(item.get("retired", False)),
    )


# --- the invoice, the upload -------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceLine:
    """One printed line of the invoice a customer may name, by its printed number (from 1)."""

    line_number: int
    description: str
    amount: Decimal


@dataclass(frozen=True)
class DisputedInvoice:
    """The invoice as the warehouse showed it to the customer who disputes it."""

    account_key: str
    invoice_id: str
    invoice_number: str
    currency: str
    total_amount: Decimal
    invoice_key: str | None = None
    lines: tuple[InvoiceLine, ...] = ()

    def line(self, line_number: int) -> InvoiceLine | None:
        return next((line for line in self.lines if line.line_number == line_number), None)

    @classmethod
    def of(cls, account_key: str, invoice: Any) -> DisputedInvoice:
        """From the invoice the customer's view read (`q2c.portal.access.InvoiceDetail`)."""
        return cls(
            account_key=account_key, invoice_id=invoice.invoice_id,
            invoice_key=invoice.invoice_key, invoice_number=invoice.invoice_number,
            currency=invoice.currency, total_amount=Decimal(invoice.total),
            lines=tuple(InvoiceLine(line.position, line.description, Decimal(line.amount))
                        for line in invoice.lines),
        )


@dataclass(frozen=True)
class Upload:
    """A file as the browser sent it: its name (untrusted) and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Attachment:
    """A stored attachment: the name it downloads as, its type, size and hash."""

    name: str
    content_type: str
    size: int
    sha256: str
    stored_as: str


def sniff(data: bytes) -> tuple[str, str] | None:
    """(MIME type, extension) of a PDF, PNG or JPEG recognised from its bytes, else None."""
    if data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]:
        return PDF
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return PNG
    if data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\0\r\n ").endswith(b"\xff\xd9"):
        return JPEG
    return None


def download_name(filename: str, extension: str, dispute_number: int) -> str:
    """A name that is safe in any file system and header: letters, digits, `.`, `_`, `-`.

    The extension is the one of the type the bytes were recognised as, never the one the
    customer's file name claimed.
    """
    stem = unicodedata.normalize("NFKD", Path(filename.replace("\\", "/")).name)
    stem = stem.encode("ascii", "ignore").decode("ascii").rsplit(".", 1)[0]
    stem = _SAFE_NAME.sub("-", stem).strip(".-_")[:60]
    return f"{stem or f'dispute-{dispute_number}'}.{extension}"


def check_upload(upload: Upload, limit: int = MAX_ATTACHMENT_BYTES) -> tuple[str, str]:
    """The upload's (MIME type, extension), when it is an allowed file within the limit.

    Raises:
        DisputeError: It is empty, larger than `limit`, or not a PDF, PNG or JPEG by its
            bytes (whatever its name says).
    """
    if not upload.data:
        raise DisputeError("the attached file is empty: attach a PDF, PNG or JPEG",
                           key="dispute_error_attachment_type")
    if len(upload.data) > limit:
        raise DisputeError(f"the attached file has {len(upload.data):,} bytes; attach at "
                           f"most {limit // (1024 * 1024)} MB", key="dispute_error_attachment_size")
    kind = sniff(upload.data)
    if kind is None:
        raise DisputeError("the attached file is not a PDF, PNG or JPEG: attach one of "
                           "those (a scan or a photo of the document)",
                           key="dispute_error_attachment_type")
    return kind


def check_comment(comment: str, required: bool) -> str:
    """The comment as given, when it is plain text within COMMENT_LIMIT characters.

    Raises:
        DisputeError: It is missing where the reason needs one, too long, or holds a
            control character (other than tab and line breaks).
    """
    if required and not comment.strip():
        raise DisputeError("this reason needs a comment: say what is wrong",
                           key="dispute_error_comment_required")
    if len(comment) > COMMENT_LIMIT:
        raise DisputeError(f"the comment has {len(comment)} characters; keep it to "
                           f"{COMMENT_LIMIT}", key="dispute_error_comment_long")
    bad = next((ch for ch in comment if _refused_in_comment(ch)), None)
    if bad is not None:
        raise DisputeError(f"the comment holds the control character U+{ord(bad):04X}; "
                           "write plain text", key="dispute_error_comment_text")
    return comment


def _refused_in_comment(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS
