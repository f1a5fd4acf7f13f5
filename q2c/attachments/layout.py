"""Layout patterns: where in the repository a rule looks, keyed on the invoice's ids.

A pattern is a relative path with placeholders in braces; its file name part may be a glob:

    accounts/{account_id}/contracts/*.pdf      every contract PDF of the account
    quotes/{quote_id}/sow.pdf                  the statement of work of the quote
    orders/{order_id}/proof-of-delivery.pdf    the signed proof of delivery of the order
    invoices/{invoice_id}/*.pdf                anything filed for this one invoice

Placeholders (`PLACEHOLDERS`):

- `account_id`: the CRM account id, or the ERP customer id for an ERP-only customer;
  `crm_account_id`, `erp_customer_id` and `account_key` (q2c's key) name one each.
- `opportunity_id`: the CRM opportunity the invoice bills (`crm_opportunity_id`). q2c takes
  a closed-won opportunity as both the accepted quote and the order handed to the ERP, so
  `quote_id` and `order_id` name the same id.
- `invoice_id` (the ERP's id) and `invoice_number` (as printed).

An id filled in must be a plain token: letters, digits, `.`, `_` and `-`, starting with a
letter or digit, at most 128 characters, no `..`. Anything else (a slash, a space, a NUL,
`..`, an absolute path) is refused before it reaches a file path or an S3 key, and the rule
reports it instead of looking; so an invoice number such as `2026/0001` cannot key a path,
and `invoice_id` is the one to use.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import PurePosixPath

PLACEHOLDERS = {
    "account_id": "the CRM account id (the ERP customer id when the account is ERP-only)",
    "account_key": "q2c's account key",
    "crm_account_id": "the CRM account id",
    "erp_customer_id": "the ERP customer id",
    "opportunity_id": "the CRM opportunity id (crm_opportunity_id)",
    "quote_id": "the quote id (the CRM opportunity, crm_opportunity_id)",
    "order_id": "the order id (the CRM opportunity, crm_opportunity_id)",
    "invoice_id": "the ERP invoice id",
    "invoice_number": "the invoice number",
}

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LITERAL = re.compile(r"[A-Za-z0-9._/*?-]*")
_GLOB = re.compile(r"[*?]")


class LayoutError(ValueError):
    """A layout pattern in the rules file is not usable; the message names the rule."""


class MissingIdError(LookupError):
    """The invoice has no value for an id the pattern needs (say, no CRM opportunity)."""

    def __init__(self, field: str):
        super().__init__(f"the invoice has no {PLACEHOLDERS.get(field, field)}")
        self.field = field


class UnsafeIdError(ValueError):
    """An id from the CRM or ERP that must not become part of a path or an S3 key."""

    def __init__(self, field: str, value: str):
        super().__init__(
            f"{PLACEHOLDERS.get(field, field)} {value!r} is not a plain id (letters, digits, "
            "'.', '_', '-'; no '..', '/' or spaces), so it was not looked up; correct it "
            "in the source system or key the rule's path on another id"
        )
        self.field = field
        self.value = value


def check_pattern(pattern: str) -> str:
    """Return `pattern` if it is a usable layout pattern, else raise `LayoutError`."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise LayoutError("the path is empty")
    names = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise LayoutError(f"path {pattern!r} has unbalanced braces ({exc})") from exc
    for literal, name, spec, conversion in parsed:
        if not _LITERAL.fullmatch(literal):
            raise LayoutError(
                f"path {pattern!r} may only hold letters, digits, '.', '_', '-', '/', '*', "
                "'?' and {placeholders}"
            )
        if name is not None:
            if name not in PLACEHOLDERS or spec or conversion:
                raise LayoutError(
                    f"path {pattern!r} has the placeholder {{{name}}}; the known ones are "
                    + ", ".join(f"{{{known}}}" for known in PLACEHOLDERS)
                )
            names.append(name)
    path = PurePosixPath(pattern)
    if pattern.startswith("/") or ".." in path.parts or pattern.endswith("/"):
        raise LayoutError(f"path {pattern!r} must be relative to the repository, without '..'")
    if any(_GLOB.search(part) for part in path.parts[:-1]):
        raise LayoutError(f"path {pattern!r} may use * and ? in the file name only")
    return pattern


def safe_id(field: str, value: object) -> str:
    """`value` as a path part, or `MissingIdError` / `UnsafeIdError`."""
    if value is None or not str(value).strip():
        raise MissingIdError(field)
    text = str(value).strip()
    if not SAFE_ID.fullmatch(text) or ".." in text:
        raise UnsafeIdError(field, str(value))
    return text


def expand(pattern: str, ids: Mapping[str, object]) -> str:
    """Fill in a checked pattern with the invoice's ids, each checked by `safe_id`."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(pattern):
        parts.append(literal)
        if name is not None:
            parts.append(safe_id(name, ids.get(name)))
    return "".join(parts)
