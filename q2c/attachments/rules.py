"""Attachment rules: which supporting documents go with an invoice, read from a YAML file.

A rules file (`default_rules.yaml` beside this module is the shipped one; point
`Q2C_ATTACHMENT_RULES` at your own) lists rules; every rule whose `when:` matches the
invoice's account brings its document:

    version: 1
    rules:
      - id: enterprise-contract          # unique; named in holds and on the record
        document: contract               # contract, statement_of_work, proof_of_delivery,
                                         # account_statement or other
        description: Signed master agreement and order forms.
        when:                            # all keys must match; a list means any of
          segment: enterprise            # segment, country, language, currency, or
          country: [DE, AT, CH]          # attribute.<any core.dim_accounts column>
        path: accounts/{account_id}/contracts/*.pdf   # layout pattern (layout.py);
                                         # none for account_statement, which q2c generates
        required: true                   # missing -> the invoice is held back, not sent
        email: true                      # attached to the invoice email
        embed: false                     # embedded in the invoice PDF (PDF/A-3 style)
        max_size: 10 MB                  # per file; larger is treated as missing

A rule without `when:` applies to every invoice. Values are compared without regard to
case. A key or value the file does not allow is refused with the file, rule and field.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from q2c.attachments.facts import SHORT_NAMES, InvoiceFacts
from q2c.attachments.layout import LayoutError, check_pattern

DEFAULT_RULES_FILE = Path(__file__).resolve().with_name("default_rules.yaml")

ACCOUNT_STATEMENT = "account_statement"
DOCUMENTS = {
    "contract": "contract",
    "statement_of_work": "statement of work",
    "proof_of_delivery": "proof of delivery",
    ACCOUNT_STATEMENT: "account statement",
    "other": "supporting document",
}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_RULE_KEYS = ("id", "document", "description", "when", "path", "required", "email", "embed",
              "max_size")
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ATTRIBUTE = re.compile(r"attribute\.[a-z_][a-z0-9_]*")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


class AttachmentRulesError(ValueError):
    """The rules file cannot be used; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class AttachmentRule:
    """One rule of the rules file; see the module docstring for the fields."""

    id: str
    document: str
    path: str | None
    when: tuple[tuple[str, frozenset[str]], ...] = ()
    required: bool = False
    email: bool = True
    embed: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    description: str = ""

    @property
    def label(self) -> str:
        """The document in words: `statement of work`."""
        return DOCUMENTS[self.document]

    @property
    def generated(self) -> bool:
        return self.document == ACCOUNT_STATEMENT

    def applies_to(self, facts: InvoiceFacts) -> bool:
        return all((facts.value(name) or "").lower() in accepted for name, accepted in self.when)

    def describe_when(self) -> str:
        if not self.when:
            return "every invoice"
        return "; ".join(f"{name} in {sorted(values)}" for name, values in self.when)


@dataclass(frozen=True)
class AttachmentRules:
    """The rules of one file, in file order, and where they came from."""

    rules: tuple[AttachmentRule, ...]
    source: str

    def for_invoice(self, facts: InvoiceFacts) -> list[AttachmentRule]:
        """The rules that apply to an invoice, in file order."""
        return [rule for rule in self.rules if rule.applies_to(facts)]

    def check_attributes(self, columns: Collection[str]) -> None:
        """Refuse a rule testing an attribute the account model does not have (a typo)."""
        for rule in self.rules:
            for name, _ in rule.when:
                column = name.removeprefix("attribute.")
                if name.startswith("attribute.") and column not in columns:
                    raise AttachmentRulesError(
                        f"{self.source}, rule `{rule.id}`: when `{name}` names no column of "
                        f"core.dim_accounts (it has {', '.join(sorted(columns))})"
                    )


def load_rules(path: Path | str | None = None) -> AttachmentRules:
    """Read a rules file; the shipped `default_rules.yaml` when `path` is None."""
    source = Path(path) if path else DEFAULT_RULES_FILE
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AttachmentRulesError(
            f"attachment rules file {source} does not exist; fix Q2C_ATTACHMENT_RULES or "
            "unset it to use the shipped rules"
        ) from exc
    except yaml.YAMLError as exc:
        raise AttachmentRulesError(f"{source} is not valid YAML: {exc}") from exc
    return parse_rules(data, str(source))


def parse_rules(data: object, source: str) -> AttachmentRules:
    """Check and build the rules of a parsed rules file (`source` names it in errors)."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise AttachmentRulesError(f"{source} must be a mapping with a `rules:` list")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version != 1:
        raise AttachmentRulesError(f"{source}: `version` must be 1, not {version!r}")
    rules = tuple(_rule(raw, index, source) for index, raw in enumerate(data["rules"], 1))
    seen = set()
    for rule in rules:
        if rule.id in seen:
            raise AttachmentRulesError(f"{source}: rule id `{rule.id}` is used twice")
        seen.add(rule.id)
    return AttachmentRules(rules, source)


def _rule(raw: object, index: int, source: str) -> AttachmentRule:
    where = f"{source}, rule {index}"
    if not isinstance(raw, dict):
        raise AttachmentRulesError(f"{where} must be a mapping of {', '.join(_RULE_KEYS)}")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
        raise AttachmentRulesError(f"{where}: `id` {rule_id!r} must be text of letters, "
                                   "digits, '-', '_' or '.' (quote a number: `id: \"5\"`)")
    where = f"{source}, rule `{rule_id}`"
    unknown = sorted(set(map(str, raw)) - set(_RULE_KEYS))
    if unknown:
        raise AttachmentRulesError(f"{where}: unknown keys {', '.join(unknown)}; a rule has "
                                   f"{', '.join(_RULE_KEYS)}")
    document = str(raw.get("document") or "")
    if document not in DOCUMENTS:
        raise AttachmentRulesError(f"{where}: `document` {document!r} must be one of "
                                   f"{', '.join(DOCUMENTS)}")
    path = raw.get("path")
    if document == ACCOUNT_STATEMENT and path is not None:
        raise AttachmentRulesError(f"{where}: an account statement is generated from the AR "
                                   "data; remove `path`")
    if document != ACCOUNT_STATEMENT:
        try:
            path = check_pattern(path)
        except LayoutError as exc:
            raise AttachmentRulesError(f"{where}: `path`: {exc}") from exc
    flags = {name: _flag(raw, name, default, where) for name, default in
             (("required", False), ("email", True), ("embed", False))}
    if not (flags["email"] or flags["embed"]):
        raise AttachmentRulesError(f"{where}: set `email` or `embed` to true, or the document "
                                   "goes nowhere")
    return AttachmentRule(
        id=rule_id, document=document, path=path, when=_when(raw.get("when"), where),
        max_bytes=_size(raw.get("max_size"), where), description=str(raw.get("description")
                                                                    or ""),
        **flags,
    )


def _flag(raw: dict, name: str, default: bool, where: str) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise AttachmentRulesError(f"{where}: `{name}` must be true or false, not {value!r}")
    return value


def _when(raw: object, where: str) -> tuple[tuple[str, frozenset[str]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise AttachmentRulesError(f"{where}: `when` must map facts to values")
    conditions = []
    for name, accepted in raw.items():
        name = str(name)
        if name not in SHORT_NAMES and not _ATTRIBUTE.fullmatch(name):
            raise AttachmentRulesError(
                f"{where}: `when` key `{name}` must be one of {', '.join(SHORT_NAMES)} or "
                "attribute.<column of core.dim_accounts>"
            )
        values = accepted if isinstance(accepted, list) else [accepted]
        if not values or any(value is None or isinstance(value, (dict, list))
                             for value in values):
            raise AttachmentRulesError(f"{where}: `when.{name}` must be a value or a list of "
                                       "values")
        conditions.append((name, frozenset(_as_text(value).lower() for value in values)))
    return tuple(conditions)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _size(raw: object, where: str) -> int:
    if raw is None:
        return DEFAULT_MAX_BYTES
    match = _SIZE.fullmatch(str(raw).strip()) if not isinstance(raw, bool) else None
    size = Decimal(match[1]) * _UNITS[(match[2] or "b").lower()] if match else Decimal(0)
    if size <= 0 or size != size.to_integral_value():
        raise AttachmentRulesError(f"{where}: `max_size` {raw!r} must be a size such as "
                                   "`5 MB`, `800 KB` or a whole number of bytes")
    return int(size)
