"""Shared parts of the dispute and contact tests, and their steps of the cross-customer walk
(tests/test_portal_access.py): files a customer attaches, and a dispute or an address
change made by the owner of the foreign ids for the walker to reach for."""

from __future__ import annotations

import re
import struct
import zlib

from q2c.content.registry import load_registry
from q2c.portal.contacts import ContactBook

# A minimal PDF, PNG and JPEG as their bytes begin and end.
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def png(width: int = 1, height: int = 1) -> bytes:
    """A valid grey PNG of the given size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


_DISPUTE_PAGE = re.compile(r"^/disputes/([A-Za-z0-9_-]{22})$")


def open_dispute(client, invoice_public: str, reason: str = "wrong_amount", line: str = "",
                 comment: str = "", attachment: tuple[str, bytes, str] | None = None):
    """Post the dispute form as the browser does (multipart, with the page's CSRF token)."""
    client.get(f"/invoices/{invoice_public}/dispute")
    files = {"attachment": attachment} if attachment else {
        "attachment": ("", b"", "application/octet-stream")}
    return client.post(f"/invoices/{invoice_public}/dispute",
                       {"reason": reason, "line": line, "comment": comment}, files=files)


def dispute_id_of(response) -> str:
    """The dispute's id from the redirect to its page."""
    found = _DISPUTE_PAGE.match(response.headers.get("location", ""))
    assert found, (response.status_code, response.headers.get("location"), response.text[:500])
    return found.group(1)


# --- the walk ------------------------------------------------------------------------------

def walk_owner_dispute(w) -> str:
    """A dispute the owner of the foreign ids opened on the foreign invoice (made once)."""
    if "owner_dispute" not in w.extra:
        made = open_dispute(w.owner, w.ids["invoice"], comment="walk",
                            attachment=("walk.pdf", PDF, "application/pdf"))
        w.extra["owner_dispute"] = dispute_id_of(made)
    return w.extra["owner_dispute"]


def walk_post_dispute(w):
    """The caller posts a dispute of the foreign invoice."""
    w.caller.get("/invoices")
    return w.caller.post(f"/invoices/{w.ids['invoice']}/dispute",
                         {"reason": "duplicate", "line": "", "comment": "walk"},
                         files={"attachment": ("walk.pdf", PDF, "application/pdf")})


def walk_confirmation_token(w, confirmed: bool) -> str:
    """A token of an address change of some other account; confirmed first if asked."""
    settings = w.portal.settings
    book = ContactBook(settings.ops_store, load_registry(settings.content_dir),
                       seller_name=settings.seller.name)
    _, token = book.request_address_change(
        "walk-account", f"walk-{len(w.extra)}@new.example", actor="customer:walk",
        language="en", customer_name="Walk Ltd", previous_email=None, consent=True)
    if confirmed:
        book.confirm(token)
    return token
