"""The stored invoice PDFs a delivery attaches, and the attachment's file name.

`q2c.invoice_delivery` joins due invoices to the PDF rendered from their current inputs
(looked up by input hash in the document manifest) and attaches it under a name every mail
client accepts, so the email body, the portal copy and the attachment show the same amounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from q2c.warehouse import OPS_SCHEMA

_DOCUMENTS_SQL = f"""
select input_hash, document_id, path
from {OPS_SCHEMA}.document_manifest
where input_hash is not null
qualify row_number() over (partition by input_hash order by rendered_at desc) = 1
"""
_UNSAFE_FILE_CHARS = re.compile(r"[^\w.\-]+")


@dataclass(frozen=True)
class StoredDocument:
    document_id: str
    pdf_path: str


def stored_documents(conn: duckdb.DuckDBPyConnection) -> dict[str, StoredDocument]:
    """Rendered documents by the hash of their inputs, for those whose PDF is still stored."""
    return {
        input_hash: StoredDocument(document_id, path)
        for input_hash, document_id, path in conn.execute(_DOCUMENTS_SQL).fetchall()
        if Path(path).is_file()
    }


def attachment_name(invoice_number: str) -> str:
    """`2026/0001` -> `2026_0001.pdf`: a file name every mail client accepts."""
    return (_UNSAFE_FILE_CHARS.sub("_", invoice_number).strip("._") or "invoice") + ".pdf"
