"""Trading-partner profiles: what one X12 partner's implementation guide asks of an 810.

US retailers and distributors each publish an implementation guide for the invoices they
accept: the X12 version (4010 is still the most common, 5010 the newer), a suffix on the
GS08 version some retail groups add (VICS for the Voluntary Interindustry Commerce
Standards), the interchange ids and qualifiers both sides agreed, the delimiters their
translator reads, and the segments their guide makes mandatory beyond the standard. A
profile holds exactly that, as data in `partners.yaml`, so onboarding a partner is an edit
to that file, not to code.

The profile file is read strictly: an unknown key, a missing id, a delimiter that is a
letter or digit, or two delimiters that are the same character is an error naming the
file, the partner and the field, because a wrong delimiter makes every invoice unreadable
for the partner.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("partners.yaml")
VERSIONS = ("004010", "005010")
# "ITD", or "N1*BT": a segment id, optionally with the value its first element must have.
_REQUIRED_SEGMENT = re.compile(r"[A-Z][A-Z0-9]{1,2}(\*[A-Z0-9]{1,3})?")


class PartnerProfileError(ValueError):
    """A trading-partner profile that cannot be used; the message names file, partner, field."""


@dataclass(frozen=True)
class TradingPartner:
    """One trading partner's X12 conventions.

    `sender_*` are our interchange qualifier and id (ISA05/06), `receiver_*` the partner's
    (ISA07/08); `gs_sender` / `gs_receiver` are the application codes of GS02/03.
    `required_segments` are segment ids, or an id and its first element such as "N1*BT"
    (written with "*" whatever the partner's element separator), that every 810 for this
    partner must contain. `negative_credit_amounts` makes credit memos carry negative
    quantities, taxes, charges and total, as some guides ask; by default a credit memo
    states positive amounts and BIG07 "CR" says they are credited.
    """

    name: str
    version: str
    gs_version_suffix: str
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    gs_sender: str
    gs_receiver: str
    element_separator: str = "*"
    component_separator: str = ">"
    segment_terminator: str = "~"
    repetition_separator: str = "^"
    line_break: bool = True
    usage: str = "P"
    ack_requested: bool = True
    required_segments: tuple[str, ...] = ()
    negative_credit_amounts: bool = False

    @property
    def isa_version(self) -> str:
        """ISA12: 004010 -> 00401, 005010 -> 00501."""
        return self.version[:5]

    @property
    def gs_version(self) -> str:
        """GS08: the version and the partner's suffix, e.g. 004010VICS."""
        return self.version + self.gs_version_suffix

    @property
    def delimiters(self) -> dict[str, str]:
        """Field name to character, for the checks and error messages."""
        return {
            "element separator": self.element_separator,
            "component separator": self.component_separator,
            "segment terminator": self.segment_terminator,
            "repetition separator": self.repetition_separator,
        }


_FIELDS = {field.name: field for field in dataclasses.fields(TradingPartner)}
_REQUIRED = [name for name, field in _FIELDS.items()
             if field.default is dataclasses.MISSING and name != "name"]


def load_partners(path: Path | None = None) -> dict[str, TradingPartner]:
    """Read the trading-partner profiles, keyed by partner name.

    Args:
        path: A YAML file with a top-level `partners:` mapping of name to profile;
            `q2c/x12/partners.yaml` when omitted.

    Raises:
        PartnerProfileError: Naming the file, the partner and the field that is wrong.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PartnerProfileError(f"{path}: cannot read the partner profiles: {exc}") from None
    except yaml.YAMLError as exc:
        raise PartnerProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("partners"), dict):
        raise PartnerProfileError(
            f"{path}: expected a top-level `partners:` mapping of partner name to profile"
        )
    return {
        str(name): _partner(path, str(name), entry)
        for name, entry in data["partners"].items()
    }


def _partner(path: Path, name: str, entry: object) -> TradingPartner:
    def fail(field: str, problem: str) -> PartnerProfileError:
        return PartnerProfileError(f"{path}: partner {name!r}, field {field!r}: {problem}")

    if not isinstance(entry, dict):
        raise fail("(profile)", "expected a mapping of fields")
    unknown = sorted(set(entry) - set(_FIELDS) - {"name"})
    if unknown:
        raise fail(unknown[0], f"unknown field; known fields are {', '.join(_FIELDS)}")
    for field in _REQUIRED:
        if field not in entry and field != "gs_version_suffix":
            raise fail(field, "missing; every profile names it")

    values: dict[str, object] = {"name": name}
    for field, value in entry.items():
        if field == "name":
            continue
        default = _FIELDS[field].default
        if field == "required_segments":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(field, "expected a list of segment ids such as ITD or N1*BT")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise fail(field, f"expected true or false, got {value!r}")
        elif value is None:
            value = ""
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(field, f"expected text, got {value!r}")
        else:
            value = str(value)
        values[field] = value
    values.setdefault("gs_version_suffix", "")
    partner = TradingPartner(**values)
    _check(partner, fail)
    return partner


def _check(partner: TradingPartner, fail) -> None:
    if partner.version not in VERSIONS:
        raise fail("version", f"{partner.version!r} is not supported; use one of {VERSIONS}")
    suffix = partner.gs_version_suffix
    if len(partner.gs_version) > 12 or not (suffix.isalnum() or not suffix):
        raise fail("gs_version_suffix", f"{suffix!r}: GS08 holds letters and digits, 12 at most")
    for field in ("sender_qualifier", "receiver_qualifier"):
        value = getattr(partner, field)
        if len(value) != 2 or not value.isalnum():
            raise fail(field, f"{value!r}: an ISA id qualifier is two letters or digits (ZZ, 01)")
    for field, low, high in (("sender_id", 1, 15), ("receiver_id", 1, 15),
                             ("gs_sender", 2, 15), ("gs_receiver", 2, 15)):
        value = getattr(partner, field)
        if not (low <= len(value) <= high) or not _printable(value) or value != value.strip():
            raise fail(field, f"{value!r}: {low} to {high} printable characters without "
                              "leading or trailing spaces")
    if partner.usage not in ("P", "T"):
        raise fail("usage", f"{partner.usage!r}: ISA15 is P (production) or T (test)")

    seen: dict[str, str] = {}
    for label, char in partner.delimiters.items():
        field = label.replace(" ", "_")
        if len(char) != 1:
            raise fail(field, f"{char!r}: a delimiter is exactly one character")
        if char.isalnum() or (char.isspace() and char != "\n") or not char.isascii():
            raise fail(field, f"{char!r}: a delimiter must not be a letter, digit or space, "
                              "since it would clash with the data")
        if char in seen:
            raise fail(field, f"{char!r} is also the {seen[char]}; each delimiter must differ")
        seen[char] = label
        for value_field in ("sender_id", "receiver_id", "gs_sender", "gs_receiver"):
            if char in getattr(partner, value_field):
                raise fail(value_field, f"contains the {label} {char!r}")
    if partner.segment_terminator == "\n" and partner.line_break:
        raise fail("line_break", "the segment terminator is already a newline; "
                                 "set line_break: false")
    for spec in partner.required_segments:
        if not _REQUIRED_SEGMENT.fullmatch(spec):
            raise fail("required_segments", f"{spec!r}: write a segment id (ITD) or an id and "
                                            "its first element (N1*BT)")


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()
