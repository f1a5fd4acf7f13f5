"""Recipient address checks and masking for logs.

Billing emails come straight from the ERP and CRM. Real-shaped extracts hold empty values
and anonymised ones (32 hex characters such as `ebe31c0498dd42addc9e5fddd2fdabb8`, the MD5 of
the original), so every address is checked before a message is built or sent. The check is
syntactic (RFC 5321 dot-atom local part, a DNS host name with an alphabetic top-level
domain); whether the mailbox exists is for the mail server to say.
"""

from __future__ import annotations

import re

from q2c.delivery.errors import InvalidRecipientError

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TOP_LEVEL_LABEL = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
_FIX_HINT = "fix the billing email on the customer record in the ERP or CRM"


def validate_recipient(value: str | None) -> str:
    """Return the address in canonical form (trimmed, domain lower-cased) or raise.

    Args:
        value: One bare address such as `ap@example.com`, as stored in the source system.

    Raises:
        InvalidRecipientError: The value is empty, a hash, more than one address, or not
            shaped like a deliverable address. The message names the problem and the fix.
    """
    address = (value or "").strip()
    if not address:
        raise InvalidRecipientError(f"recipient is empty: {_FIX_HINT}")
    if _HEX_DIGEST.fullmatch(address):
        raise InvalidRecipientError(
            f"recipient is a {len(address)}-character hex digest, not an email address "
            f"(the source holds hashed or anonymised data): {_FIX_HINT}"
        )
    masked = mask_address(address)
    if "@" not in address:
        raise InvalidRecipientError(f"recipient {masked} has no '@': {_FIX_HINT}")
    if any(ch.isspace() or ch in ",;<>\"()[]\\" for ch in address):
        raise InvalidRecipientError(
            f"recipient {masked} holds spaces, a list or a display name; "
            f"exactly one bare address is expected: {_FIX_HINT}"
        )
    local, _, domain = address.rpartition("@")
    if "@" in local or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        raise InvalidRecipientError(f"recipient {masked} has an invalid local part: {_FIX_HINT}")
    if not is_valid_domain(domain):
        raise InvalidRecipientError(
            f"recipient {masked} has no valid domain (a host name such as example.com is "
            f"expected): {_FIX_HINT}"
        )
    return f"{local}@{domain.lower()}"


def is_valid_domain(domain: str) -> bool:
    """Tell whether `domain` is an ASCII DNS name with at least two labels."""
    labels = domain.split(".")
    return (
        len(domain) <= 253
        and len(labels) >= 2
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and _TOP_LEVEL_LABEL.fullmatch(labels[-1]) is not None
    )


def mask_address(value: str | None) -> str:
    """Hide the mailbox name so logs and errors show only the domain: `***@example.com`."""
    text = (value or "").strip()
    if "@" not in text:
        return "***"
    return "***@" + text.rpartition("@")[2].lower()


def scrub_address(text: str, address: str | None) -> str:
    """Replace `address` inside free text (a server reply, say) by its masked form."""
    if not address:
        return text
    return re.sub(re.escape(address), mask_address(address), text, flags=re.IGNORECASE)
