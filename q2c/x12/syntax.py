"""The X12 syntax every X12 module shares: delimiters, segments, numbers, dates.

An interchange names its own delimiters in its first segment, the fixed-width ISA: the
element separator is the character after "ISA" (index 3), the component separator is ISA16
(index 104) and the segment terminator follows it (index 105). Reading the ISA by its
elements rather than by those offsets finds the delimiters even when a broken ISA has the
wrong width, so the validator can still say which element is off.

Numbers follow the X12 data types without passing through float: "R" is a decimal with an
optional point, a leading minus, and leading and trailing zeros suppressed (15.5, .25, -3);
"N2" is an integer with two implied decimals (1234 is 12.34).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    InvalidOperation,
    localcontext,
)

ISA_LENGTH = 106  # "ISA", 16 elements, 16 separators and the terminator
# ISA01..ISA16: every ISA element has a fixed width.
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
ENVELOPE_IDS = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})
CENT = Decimal("0.01")
# Sums and products of amounts read from a file, worked out exactly whatever their size: the
# default 28 digits would round a long amount silently, or refuse to state it in cents.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation])


class X12ParseError(ValueError):
    """Text that cannot be read as an X12 interchange; the message names the segment."""


@dataclass(frozen=True)
class Delimiters:
    """The four delimiters of one interchange (repetition is None before 5010)."""

    element: str
    component: str
    terminator: str
    repetition: str | None = None


@dataclass(frozen=True)
class Segment:
    """One segment: its 1-based position in the interchange, its id and its elements.

    `elements[0]` is the segment id, so `elements[n]` is element n (BIG02 is `elements[2]`).
    """

    position: int
    elements: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.elements[0]

    def get(self, index: int) -> str:
        """Element `index` (1-based), or "" when the segment stops before it."""
        return self.elements[index] if index < len(self.elements) else ""


@dataclass(frozen=True)
class Interchange:
    """An interchange split into segments; `isa_text` is the ISA as written (with terminator)."""

    delimiters: Delimiters
    segments: tuple[Segment, ...]
    isa_text: str


def read_interchange(text: str) -> Interchange:
    """Split `text` into segments using the delimiters its ISA declares.

    Raises:
        X12ParseError: The text does not start with an ISA whose delimiters can be read.
    """
    body = text.lstrip("\r\n\ufeff")
    if not body.startswith("ISA") or len(body) < 4:
        raise X12ParseError(
            "the text does not start with an ISA segment; an X12 interchange begins with "
            "'ISA' followed by its element separator"
        )
    element = body[3]
    parts = body.split(element, 16)
    if len(parts) < 17 or len(parts[16]) < 2:
        raise X12ParseError(
            f"the ISA segment has fewer than 16 elements separated by {element!r}; "
            "its delimiters cannot be read"
        )
    component, terminator = parts[16][0], parts[16][1]
    if terminator.isalnum() or terminator == element:
        raise X12ParseError(
            f"the character after ISA16 is {terminator!r}, not a segment terminator; "
            "ISA16 must be a single component separator followed by the terminator"
        )
    isa_end = len(element.join(parts[:16])) + len(element) + 2
    isa_text = body[:isa_end]
    isa_elements = tuple(isa_text[:-1].split(element))
    repetition = None
    if len(isa_elements) > 12 and isa_elements[12] >= "00501":
        repetition = isa_elements[11] or None
    delimiters = Delimiters(element, component, terminator, repetition)

    segments = [Segment(1, isa_elements)]
    for raw in body[isa_end:].split(terminator):
        raw = raw.strip("\r\n")
        if not raw:
            continue
        segments.append(Segment(len(segments) + 1, tuple(raw.split(element))))
    return Interchange(delimiters, tuple(segments), isa_text)


def format_r(value: Decimal, *, max_digits: int | None = None) -> str:
    """A Decimal as X12 type R: no exponent, no leading or trailing zeros (0.50 -> .5)."""
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    if value == value.to_integral_value():
        text = f"{value.quantize(Decimal(1)):f}"
    else:
        text = f"{value.normalize():f}"
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    if text.startswith("0."):
        text = text[1:]
    if text == "0":
        sign = ""
    digits = sum(ch.isdigit() for ch in text)
    if max_digits is not None and digits > max_digits:
        raise ValueError(f"{value} has {digits} digits; the X12 element holds at most {max_digits}")
    return sign + text


def format_n2(value: Decimal, *, max_digits: int | None = None) -> str:
    """A Decimal as X12 type N2, two implied decimals (12.34 -> 1234, -5 -> -500).

    Raises ValueError when the value has a non-zero third decimal: N2 cannot carry it, and
    rounding would change an issued amount.
    """
    value = Decimal(value)
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(
            f"{value} has more than two decimals; X12 N2 amounts carry exactly two"
        )
    text = str(int(cents))
    digits = len(text.lstrip("-"))
    if max_digits is not None and digits > max_digits:
        raise ValueError(f"{value} has {digits} digits; the X12 element holds at most {max_digits}")
    return text


# An optional minus, ASCII digits with at most one decimal point, at least one digit.
_R_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_r(text: str) -> Decimal:
    """X12 type R to Decimal; ValueError when it is not one."""
    stripped = text.strip()
    if not _R_NUMBER.fullmatch(stripped) or stripped != text:
        raise ValueError(f"{text!r} is not an X12 decimal (R)")
    try:
        value = Decimal(stripped)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an X12 decimal (R)") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not an X12 decimal (R)")
    return value


def parse_n2(text: str) -> Decimal:
    """X12 type N2 (integer with two implied decimals) to Decimal, exact at any length."""
    parse_int(text)
    return Decimal(f"{text}E-2")


def parse_int(text: str) -> int:
    """X12 type N0 to int; ValueError when it is not one (a leading minus is allowed)."""
    digits = text[1:] if text.startswith("-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{text!r} is not an X12 integer")
    return int(text)


def round_cents(value: Decimal) -> Decimal:
    """Half-up (away from zero) to cents: how an extended line amount is stated.

    Exact for any finite amount, however many digits it has.
    """
    with localcontext(EXACT):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)


def format_date8(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def is_date(text: str, width: int) -> bool:
    """True for a real calendar date in CCYYMMDD (width 8) or YYMMDD (width 6)."""
    if len(text) != width or not text.isascii() or not text.isdigit():
        return False
    try:
        dt.datetime.strptime(text, "%Y%m%d" if width == 8 else "%y%m%d")
    except ValueError:
        return False
    return True


def is_time(text: str, widths: tuple[int, ...] = (4,)) -> bool:
    """True for HHMM, and HHMMSS / HHMMSSD / HHMMSSDD where `widths` allows them."""
    if len(text) not in widths or not text.isascii() or not text.isdigit():
        return False
    hours, minutes = int(text[:2]), int(text[2:4])
    seconds = int(text[4:6]) if len(text) >= 6 else 0
    return hours < 24 and minutes < 60 and seconds < 60
