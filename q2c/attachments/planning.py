"""Plan an invoice's supporting documents: what the rules ask for, found or missing.

`plan_attachments` runs every rule that applies to the invoice's account, looks the
document up in the repository (or generates the account statement) and returns an
`AttachmentPlan`: the documents to attach or embed, each with the rule that brought it and
its sha256, and the required ones that could not be had, each with where it was looked for
and why it is not usable. A plan with anything in `missing_required` holds the invoice
back; an optional document that is missing is noted in `skipped` and the invoice goes
without it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Protocol

from pypdf import PdfReader

from q2c.attachments.facts import InvoiceFacts
from q2c.attachments.layout import MissingIdError, UnsafeIdError, expand
from q2c.attachments.repository import DocumentRepository, RepositoryDocument, RepositoryError
from q2c.attachments.rules import DOCUMENTS, AttachmentRule, AttachmentRules
from q2c.content.registry import ContentError
from q2c.documents.model import InvoiceDocument
from q2c.documents.render import DocumentRenderError

log = logging.getLogger(__name__)

# A file the rules call `*.pdf` must be one: a mail client or PDF reader shows junk
# otherwise, and the customer should not get a broken contract.
_SIGNATURES = {".pdf": b"%PDF-"}


class StatementSource(Protocol):
    def statement_for(self, doc: InvoiceDocument) -> RepositoryDocument: ...


@dataclass(frozen=True)
class PlannedAttachment:
    """A supporting document that goes with the invoice, and why.

    Attributes:
        rule_id: The rule that brought it (the first, when several rules name one file).
        document: Its kind (`contract`, `account_statement`, ...).
        name: The file name it is attached and embedded under, unique within the plan.
        content: The bytes, exactly as found or generated.
        mime_type: Its MIME type.
        sha256: Hex sha256 of `content`.
        source: Where it came from (a path, an s3:// URL, or how it was generated).
        email: Attach it to the invoice email.
        embed: Embed it in the invoice PDF.
    """

    rule_id: str
    document: str
    name: str
    content: bytes = field(repr=False)
    mime_type: str
    sha256: str
    source: str
    email: bool
    embed: bool

    def record(self) -> dict:
        """The item without its bytes, for the delivery record and the input hash."""
        return {"rule": self.rule_id, "document": self.document, "name": self.name,
                "sha256": self.sha256, "bytes": len(self.content), "mime_type": self.mime_type,
                "source": self.source, "email": self.email, "embed": self.embed}


@dataclass(frozen=True)
class MissingAttachment:
    """A document a rule asked for that could not be attached, with where and why."""

    rule_id: str
    document: str
    looked_in: str
    why: str

    def reason(self, invoice_number: str) -> str:
        """One sentence naming the invoice, the rule, the document and where it was looked."""
        return (f"invoice {invoice_number}: rule `{self.rule_id}` requires the "
                f"{DOCUMENTS.get(self.document, self.document)}, which {self.why}; looked in "
                f"{self.looked_in}")


@dataclass(frozen=True)
class AttachmentPlan:
    """The supporting documents of one invoice; see the module docstring."""

    invoice_id: str
    invoice_number: str
    items: tuple[PlannedAttachment, ...] = ()
    missing_required: tuple[MissingAttachment, ...] = ()
    skipped: tuple[MissingAttachment, ...] = ()

    @property
    def held(self) -> bool:
        return bool(self.missing_required)

    @property
    def for_email(self) -> tuple[PlannedAttachment, ...]:
        return tuple(item for item in self.items if item.email)

    @property
    def for_pdf(self) -> tuple[PlannedAttachment, ...]:
        return tuple(item for item in self.items if item.embed)

    def renderer_attachments(self) -> list[tuple[str, bytes, str, str]]:
        """The embedded items as `PdfRenderer.render(attachments=...)` takes them."""
        return [(item.name, item.content, item.mime_type,
                 f"{DOCUMENTS.get(item.document, item.document)} ({item.rule_id})")
                for item in self.for_pdf]

    def hashes(self, embedded_only: bool = False) -> list[dict[str, str]]:
        """Rule, name and sha256 of each item, for a document's input hash."""
        items = self.for_pdf if embedded_only else self.items
        return [{"rule": item.rule_id, "name": item.name, "sha256": item.sha256,
                 "embed": str(item.embed).lower(), "email": str(item.email).lower()}
                for item in items]

    def digest(self, embedded_only: bool = False) -> str:
        """sha256 of `hashes()` as canonical JSON: equal plans give equal digests."""
        text = json.dumps(self.hashes(embedded_only), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def record(self) -> dict:
        """The plan without bytes, for the outbox decision record."""
        return {
            "items": [item.record() for item in self.items],
            "missing_required": [m.reason(self.invoice_number) for m in self.missing_required],
            "skipped": [m.reason(self.invoice_number) for m in self.skipped],
        }

    def reasons(self) -> list[str]:
        return [missing.reason(self.invoice_number) for missing in self.missing_required]


def plan_attachments(
    doc: InvoiceDocument,
    facts: InvoiceFacts,
    rules: AttachmentRules,
    repository: DocumentRepository,
    statement_source: StatementSource | None,
    reserved_names: Collection[str] = (),
) -> AttachmentPlan:
    """Find every supporting document the rules ask for with this invoice.

    Args:
        doc: The invoice (its number, account, buyer and locale).
        facts: The invoice's ids and its account's attributes (`load_invoice_facts`).
        rules: The attachment rules.
        repository: Where contracts, statements of work and proofs of delivery are kept.
        statement_source: Generates the account statement (`WarehouseStatementSource`);
            None when no statement can be made here (a statement rule then reports it).
        reserved_names: File names already taken in the email (the invoice PDF's).
    """
    items: list[PlannedAttachment] = []
    missing: list[MissingAttachment] = []
    skipped: list[MissingAttachment] = []
    names = {name.lower() for name in reserved_names}
    for rule in rules.for_invoice(facts):
        found, problem = _documents_for(rule, doc, facts, repository, statement_source)
        if problem is not None:
            (missing if rule.required else skipped).append(problem)
            log.log(logging.WARNING if rule.required else logging.INFO,
                    "%s", problem.reason(doc.invoice_number))
            continue
        for document in found:
            same = next((i for i, item in enumerate(items)
                         if item.source == document.location), None)
            if same is not None:  # two rules name one file: send it once, with both flags
                items[same] = replace(items[same], email=items[same].email or rule.email,
                                      embed=items[same].embed or rule.embed)
                continue
            name = _unique_name(document.name, names)
            names.add(name.lower())
            items.append(PlannedAttachment(
                rule_id=rule.id, document=rule.document, name=name, content=document.content,
                mime_type=document.mime_type, sha256=document.sha256,
                source=document.location, email=rule.email, embed=rule.embed,
            ))
    return AttachmentPlan(doc.invoice_id, doc.invoice_number, tuple(items), tuple(missing),
                          tuple(skipped))


def _documents_for(
    rule: AttachmentRule, doc: InvoiceDocument, facts: InvoiceFacts,
    repository: DocumentRepository, statement_source: StatementSource | None,
) -> tuple[list[RepositoryDocument], MissingAttachment | None]:
    """The rule's documents, or why it has none (an empty list is never returned alone)."""
    if rule.generated:
        where = "the AR data of the warehouse (core.fct_invoices)"
        if statement_source is None:
            return [], MissingAttachment(rule.id, rule.document, where,
                                         "cannot be generated in this step")
        try:
            document = statement_source.statement_for(doc)
        except (ValueError, ContentError, DocumentRenderError) as exc:
            return [], MissingAttachment(rule.id, rule.document, where,
                                         f"could not be generated ({exc})")
        return _usable([document], rule, where)

    try:
        pattern = expand(rule.path, facts.ids())
    except (MissingIdError, UnsafeIdError) as exc:
        return [], MissingAttachment(rule.id, rule.document,
                                     f"{repository.describe(rule.path)} (not looked up)",
                                     f"could not be looked for: {exc}")
    where = repository.describe(pattern)
    try:
        refs = repository.list(pattern)
        too_big = [ref for ref in refs if ref.size > rule.max_bytes]
        if too_big:
            return [], MissingAttachment(
                rule.id, rule.document, where,
                f"is too large: {too_big[0].path} has {too_big[0].size} bytes, the rule allows "
                f"{rule.max_bytes} (max_size)")
        documents = [repository.read(ref) for ref in refs]
    except RepositoryError as exc:
        return [], MissingAttachment(rule.id, rule.document, where,
                                     f"could not be read ({exc})")
    if not documents:
        return [], MissingAttachment(rule.id, rule.document, where, "is not there")
    return _usable(documents, rule, where)


def _usable(documents: Sequence[RepositoryDocument], rule: AttachmentRule, where: str):
    for document in documents:
        if document.size > rule.max_bytes:
            return [], MissingAttachment(
                rule.id, rule.document, where,
                f"is too large: {document.name} has {document.size} bytes, the rule allows "
                f"{rule.max_bytes} (max_size)")
        signature = _SIGNATURES.get(PurePosixPath(document.name).suffix.lower())
        if signature and not document.content.startswith(signature):
            return [], MissingAttachment(
                rule.id, rule.document, where,
                f"is not usable: {document.location} is named like a PDF but is not one")
        problem = signature and _unreadable_pdf(document.content)
        if problem:
            return [], MissingAttachment(
                rule.id, rule.document, where,
                f"is not usable: {document.location} starts like a PDF but cannot be read "
                f"({problem}); replace it with a readable copy")
    return list(documents), None


def _unreadable_pdf(content: bytes) -> str | None:
    """Why a file that starts with `%PDF-` is still no PDF a reader opens, or None.

    The signature alone lets `%PDF-1.4 hello` through; parsing it (and its page list) is
    what a customer's PDF reader does, so a broken contract is caught before it is sent.
    """
    try:
        pages = len(PdfReader(io.BytesIO(content)).pages)
    except Exception as exc:  # pypdf raises many types for a damaged file
        return f"{type(exc).__name__}: {exc}"
    return None if pages else "it has no pages"


def _unique_name(name: str, taken: set[str]) -> str:
    """`msa.pdf`, then `msa-2.pdf`, ...: two documents never share a name in one email."""
    if name.lower() not in taken:
        return name
    path = PurePosixPath(name)
    number = 2
    while f"{path.stem}-{number}{path.suffix}".lower() in taken:
        number += 1
    return f"{path.stem}-{number}{path.suffix}"
