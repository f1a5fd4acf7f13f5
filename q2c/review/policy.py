"""The review policy: which invoices a person approves before they leave.

The policy is data (a YAML file) so finance can change a threshold or add a customer on hold
without a code change, and so every queued invoice can name the exact policy that queued it
(its `version` and the SHA-256 of the file). A policy that does not parse is refused as a
whole, with the file, rule and field named: a misspelled rule silently reviewing nothing is
the failure this module exists to prevent.

Rules, each with an `id` that becomes part of every reason it gives:

- `amount_above`: the invoice total (its absolute value, so a large credit counts as much as
  a large charge) is above the amount given for its currency. Amounts are written as text
  ("10000.00") and may not be finer than the currency's ISO 4217 minor units. A currency
  that is not listed is not checked by the rule.
- `first_invoice_of_customer`: the customer's earliest invoice.
- `document_kind`: every document of the listed kinds (`invoice`, `credit_note`).
- `customer_on_hold`: the account is listed (by account key or ERP customer id), or the
  candidate says so (for example from the dim_accounts column named by `flag_column`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Protocol

import yaml

from q2c.money import MINOR_UNITS, InvalidAmountError, to_decimal
from q2c.review.amounts import format_amount

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
DOCUMENT_KINDS = (INVOICE, CREDIT_NOTE)

_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOP_LEVEL_FIELDS = {"version", "sla_hours", "rules"}


class ReviewPolicyError(ValueError):
    """The review policy file cannot be used as written."""


@dataclass(frozen=True)
class ReviewCandidate:
    """An invoice or credit note about to be delivered, with what the rules look at.

    Attributes:
        invoice_id: The ERP document id (the key of the review queue).
        invoice_number: The number as printed, which reviewers type.
        account_key: `dim_accounts.account_key`; None when the customer is unknown.
        document_kind: `invoice` or `credit_note`.
        currency: ISO 4217 code of the document.
        total: Document total in that currency.
        issue_date: The issue date as printed.
        is_first_invoice: The customer's earliest invoice.
        customer_on_hold: The account carries an on-hold flag.
        account_name: Shown to reviewers; not used by the rules.
        erp_customer_id: Lets a policy list a customer by its ERP id.
    """

    invoice_id: str
    invoice_number: str
    account_key: str | None
    document_kind: str
    currency: str
    total: Decimal
    issue_date: dt.date | None
    is_first_invoice: bool
    customer_on_hold: bool
    account_name: str | None = None
    erp_customer_id: str | None = None


@dataclass(frozen=True)
class ReviewRequirement:
    """An invoice that must be approved before delivery, with every reason that applies.

    Each reason reads `<rule id>: <what the rule saw>`.
    """

    invoice_id: str
    reasons: tuple[str, ...]

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(reason.split(":", 1)[0] for reason in self.reasons)


class Rule(Protocol):
    id: str

    def check(self, candidate: ReviewCandidate) -> str | None:
        """What makes the candidate need review, or None when the rule does not apply."""


@dataclass(frozen=True)
class AmountAbove:
    id: str
    thresholds: Mapping[str, Decimal]

    def check(self, candidate: ReviewCandidate) -> str | None:
        currency = (candidate.currency or "").strip().upper()
        threshold = self.thresholds.get(currency)
        if threshold is None:
            return None
        limit = format_amount(threshold, currency)
        if candidate.total is None:
            return f"total unknown, so it cannot be shown to be within {limit}"
        if abs(candidate.total) <= threshold:
            return None
        total = format_amount(candidate.total, currency)
        if candidate.total < 0:
            return f"total {total} is beyond {limit} in absolute value"
        return f"total {total} is above {limit}"


@dataclass(frozen=True)
class FirstInvoiceOfCustomer:
    id: str

    def check(self, candidate: ReviewCandidate) -> str | None:
        if candidate.document_kind == INVOICE and candidate.is_first_invoice:
            return "first invoice of this customer"
        return None


@dataclass(frozen=True)
class DocumentKind:
    id: str
    kinds: frozenset[str]

    def check(self, candidate: ReviewCandidate) -> str | None:
        if candidate.document_kind in self.kinds:
            return f"every {candidate.document_kind.replace('_', ' ')} is reviewed"
        return None


@dataclass(frozen=True)
class CustomerOnHold:
    id: str
    accounts: frozenset[str] = frozenset()
    flag_column: str | None = None

    def check(self, candidate: ReviewCandidate) -> str | None:
        listed = {candidate.account_key, candidate.erp_customer_id} & self.accounts
        if listed:
            return f"customer {sorted(listed)[0]} is on hold (listed in the policy)"
        if candidate.customer_on_hold:
            source = f"account flag {self.flag_column}" if self.flag_column else "account flag"
            return f"customer is on hold ({source})"
        return None


@dataclass(frozen=True)
class ReviewPolicy:
    """A parsed review policy and where it came from."""

    sla_hours: int
    rules: tuple[Rule, ...]
    version: str
    sha256: str
    source: str = field(default="")

    @property
    def on_hold_flag_column(self) -> str | None:
        """The dim_accounts column that flags customers on hold, if the policy names one."""
        for rule in self.rules:
            if isinstance(rule, CustomerOnHold) and rule.flag_column:
                return rule.flag_column
        return None


def evaluate(
    candidates: Iterable[ReviewCandidate], policy: ReviewPolicy
) -> list[ReviewRequirement]:
    """The candidates that need review, in the order given, each with all its reasons."""
    requirements = []
    for candidate in candidates:
        reasons = []
        for rule in policy.rules:
            detail = rule.check(candidate)
            if detail is not None:
                reasons.append(f"{rule.id}: {detail}")
        if reasons:
            requirements.append(ReviewRequirement(candidate.invoice_id, tuple(reasons)))
    return requirements


def default_policy_path() -> Path:
    """The policy shipped with q2c, used when `Q2C_REVIEW_POLICY` names none."""
    return Path(str(resources.files("q2c") / "review_policy.yaml"))


def load_policy(path: Path | None = None) -> ReviewPolicy:
    """Read and check a policy file (the packaged default when `path` is None)."""
    path = Path(path) if path is not None else default_policy_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReviewPolicyError(
            f"review policy {path}: cannot be read ({exc.strerror}); point Q2C_REVIEW_POLICY "
            "at a readable file or unset it to use the packaged default"
        ) from exc
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ReviewPolicyError(f"review policy {path}: not valid YAML: {exc}") from exc
    return parse_policy(document, source=str(path), sha256=hashlib.sha256(raw).hexdigest())


def parse_policy(document: object, *, source: str, sha256: str) -> ReviewPolicy:
    """Check a policy document field by field; every error names the source and rule."""
    if not isinstance(document, dict):
        raise ReviewPolicyError(
            f"review policy {source}: expected a mapping with sla_hours and rules"
        )
    unknown = sorted(set(document) - _TOP_LEVEL_FIELDS)
    if unknown:
        raise ReviewPolicyError(
            f"review policy {source}: unknown field(s) {', '.join(map(str, unknown))}; "
            f"allowed are {', '.join(sorted(_TOP_LEVEL_FIELDS))}"
        )
    sla_hours = _sla_hours(document.get("sla_hours"), source)
    rules_raw = document.get("rules")
    if not isinstance(rules_raw, list):
        raise ReviewPolicyError(
            f"review policy {source}: field `rules` must be a list of rules "
            "(an empty list reviews nothing)"
        )
    rules = tuple(_rule(entry, index, source) for index, entry in enumerate(rules_raw))
    _check_unique_ids(rules, source)
    version = document.get("version")
    return ReviewPolicy(
        sla_hours=sla_hours,
        rules=rules,
        version=str(version) if version is not None else sha256[:12],
        sha256=sha256,
        source=source,
    )


def _sla_hours(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ReviewPolicyError(
            f"review policy {source}: field `sla_hours` must be a whole number of hours "
            f"above 0 (for example 24), got {value!r}"
        )
    return value


def _check_unique_ids(rules: Sequence[Rule], source: str) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ReviewPolicyError(
                f"review policy {source}: rule `{rule.id}`, field `id`: used twice; "
                "give every rule its own id"
            )
        seen.add(rule.id)


def _rule(entry: object, index: int, source: str) -> Rule:
    if not isinstance(entry, dict):
        raise ReviewPolicyError(
            f"review policy {source}: rule #{index + 1} must be a mapping with id and kind"
        )
    rule_id = entry.get("id")
    label = f"`{rule_id}`" if isinstance(rule_id, str) else f"#{index + 1}"
    where = f"review policy {source}: rule {label}"
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise ReviewPolicyError(
            f"{where}, field `id`: must be lower-case letters, digits and _ "
            f"(for example large_amount), got {rule_id!r}"
        )
    kind = entry.get("kind")
    if kind not in _RULE_BUILDERS:
        raise ReviewPolicyError(
            f"{where}, field `kind`: {kind!r} is not a rule kind; use one of "
            f"{', '.join(_RULE_BUILDERS)}"
        )
    builder, fields = _RULE_BUILDERS[kind]
    unknown = sorted(set(entry) - {"id", "kind", "description", *fields})
    if unknown:
        raise ReviewPolicyError(
            f"{where}, field `{unknown[0]}`: not a field of a {kind} rule; "
            f"allowed are {', '.join(['id', 'kind', 'description', *fields])}"
        )
    return builder(rule_id, entry, where)


def _amount_above(rule_id: str, entry: dict, where: str) -> AmountAbove:
    amounts = entry.get("amounts")
    if not isinstance(amounts, dict) or not amounts:
        raise ReviewPolicyError(
            f"{where}, field `amounts`: give one amount per currency, for example "
            "amounts: {EUR: \"10000.00\"}"
        )
    thresholds = {}
    for currency, value in amounts.items():
        code = str(currency).strip().upper()
        if code not in MINOR_UNITS:
            raise ReviewPolicyError(
                f"{where}, field `amounts.{currency}`: not an ISO 4217 currency code"
            )
        thresholds[code] = _threshold(value, code, f"{where}, field `amounts.{currency}`")
    return AmountAbove(rule_id, thresholds)


def _threshold(value: object, currency: str, where: str) -> Decimal:
    if isinstance(value, float | bool) or not isinstance(value, str | int):
        raise ReviewPolicyError(
            f"{where}: write the amount as quoted text (for example \"10000.00\") so it is "
            f"read exactly, got {value!r}"
        )
    try:
        amount = to_decimal(value) if isinstance(value, int) else Decimal(value.strip())
    except (InvalidAmountError, ArithmeticError) as exc:
        raise ReviewPolicyError(f"{where}: {value!r} is not a decimal amount") from exc
    if not amount.is_finite() or amount < 0:
        raise ReviewPolicyError(f"{where}: the amount must be 0 or more, got {value!r}")
    digits = MINOR_UNITS[currency]
    if amount != amount.quantize(Decimal(1).scaleb(-digits)):
        raise ReviewPolicyError(
            f"{where}: {value!r} has more decimals than {currency} allows ({digits})"
        )
    return amount


def _first_invoice(rule_id: str, entry: dict, where: str) -> FirstInvoiceOfCustomer:
    return FirstInvoiceOfCustomer(rule_id)


def _document_kind(rule_id: str, entry: dict, where: str) -> DocumentKind:
    kinds = entry.get("kinds")
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or not kinds or not set(kinds) <= set(DOCUMENT_KINDS):
        raise ReviewPolicyError(
            f"{where}, field `kinds`: list one or more of {', '.join(DOCUMENT_KINDS)}, "
            f"got {entry.get('kinds')!r}"
        )
    return DocumentKind(rule_id, frozenset(kinds))


def _customer_on_hold(rule_id: str, entry: dict, where: str) -> CustomerOnHold:
    accounts = entry.get("accounts") or []
    if not isinstance(accounts, list) or not all(
        isinstance(a, str | int) and not isinstance(a, bool) for a in accounts
    ):
        raise ReviewPolicyError(
            f"{where}, field `accounts`: list account keys or ERP customer ids as text"
        )
    flag_column = entry.get("flag_column")
    if flag_column is not None and (
        not isinstance(flag_column, str) or not _COLUMN_NAME.match(flag_column)
    ):
        raise ReviewPolicyError(
            f"{where}, field `flag_column`: name a boolean column of core.dim_accounts, "
            f"got {flag_column!r}"
        )
    return CustomerOnHold(rule_id, frozenset(str(a).strip() for a in accounts), flag_column)


_RULE_BUILDERS = {
    "amount_above": (_amount_above, ("amounts",)),
    "first_invoice_of_customer": (_first_invoice, ()),
    "document_kind": (_document_kind, ("kinds",)),
    "customer_on_hold": (_customer_on_hold, ("accounts", "flag_column")),
}
