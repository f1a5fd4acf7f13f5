"""Embed supporting documents in an invoice PDF that is already rendered.

Delivery sends the PDF exactly as it was rendered and stored (or its Factur-X copy, whose
CII XML is already embedded), so the supporting documents are added to those bytes rather
than rendered again. Each file goes in the document's embedded files with its MIME type,
size, MD5 checksum and modification date (ISO 32000-1, 7.11.4; the date is the PDF's own
creation date, so the same inputs give the same bytes), and with the PDF/A-3 association
the Factur-X XML also uses: listed in the catalog's `/AF` with `AFRelationship /Supplement`
(supporting material for the invoice, not an alternative form of it). Files embedded
before, such as `factur-x.xml`, stay as they are; a file the renderer already embedded
(`PdfRenderer.render(attachments=...)`) with the same name and bytes is not added twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Sequence
from typing import Protocol

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    NameObject,
    NumberObject,
    TextStringObject,
)


class EmbeddableFile(Protocol):
    name: str
    content: bytes
    mime_type: str


class EmbedError(ValueError):
    """The PDF cannot take the files (it is not a readable PDF, or a name is taken)."""


def embedded_names(pdf: bytes) -> list[str]:
    """The names of the files embedded in a PDF."""
    return sorted(PdfReader(io.BytesIO(pdf)).attachments)


def embed_files(pdf: bytes, files: Sequence[EmbeddableFile], invoice_number: str = "") -> bytes:
    """Return `pdf` with `files` embedded; `pdf` itself when there is nothing to add.

    Raises:
        EmbedError: The PDF cannot be read, or it holds other bytes under a file's name.
    """
    if not files:
        return pdf
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
        present = {name: contents for name, contents in writer.attachments.items()}
    except Exception as exc:  # pypdf raises many types for a damaged file
        raise EmbedError(f"the PDF of invoice {invoice_number} could not be read to embed "
                         f"its attachments: {exc}") from exc
    files = [item for item in files if item.content not in present.get(item.name, ())]
    if not files:
        return pdf
    taken = set(present)
    dated = _creation_date(writer)
    catalog = writer.root_object
    associated = catalog.get("/AF")
    associated = associated.get_object() if associated is not None else ArrayObject()
    for item in files:
        if item.name in taken:
            raise EmbedError(f"the PDF of invoice {invoice_number} already holds another file "
                             f"named {item.name!r}; rename the supporting document")
        taken.add(item.name)
        embedded = writer.add_attachment(item.name, item.content)
        embedded.subtype = NameObject("/" + item.mime_type)
        embedded.size = NumberObject(len(item.content))
        embedded.checksum = ByteStringObject(
            hashlib.md5(item.content, usedforsecurity=False).digest())
        embedded.modification_date = dated
        embedded.associated_file_relationship = NameObject("/Supplement")
        spec = embedded.pdf_object
        spec[NameObject("/UF")] = TextStringObject(item.name)
        associated.append(spec.indirect_reference)
    catalog[NameObject("/AF")] = associated
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


_UNDATED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _creation_date(writer: PdfWriter) -> dt.datetime:
    """The PDF's creation date (the invoice's issue date for q2c's own PDFs)."""
    try:
        created = writer.metadata.creation_date if writer.metadata else None
    except ValueError:
        created = None
    return created or _UNDATED
