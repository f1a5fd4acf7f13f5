"""q2c's own check of an X12 interchange, generated or received.

A trading partner's translator rejects an interchange for envelope faults before a person
ever sees the invoice, and rejects an 810 whose totals do not add up; both cost a payment
cycle. So every 810 q2c writes is checked here before it leaves (a failing one is held back
with its findings), and received files can be checked the same way.

Each finding names its code, the segment, the 1-based position of that segment in the
interchange (ISA is 1) and, where one element is at fault, the element (ISA11, SE01). The
delimiters are read from the ISA, so any delimiters work. Dates are checked in the 4010 and
later formats (CCYYMMDD; the ISA keeps YYMMDD). One interchange per text is checked;
anything after its IEA is reported.

The total check of an 810: TDS01 (two implied decimals) must equal the sum over IT1 lines of
quantity x unit price, each rounded half-up to cents, plus SAC charges, less SAC
allowances (SAC05, two implied decimals; line and summary level), plus TXI tax amounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, DecimalException, localcontext

from q2c.x12.syntax import (
    ENVELOPE_IDS,
    EXACT,
    ISA_LENGTH,
    ISA_WIDTHS,
    Interchange,
    Segment,
    X12ParseError,
    is_date,
    is_time,
    parse_int,
    parse_n2,
    parse_r,
    read_interchange,
    round_cents,
)

MISSING_ISA = "missing-isa"
MISSING_IEA = "missing-iea"
MISSING_GS = "missing-gs"
MISSING_GE = "missing-ge"
MISSING_ST = "missing-st"
MISSING_SE = "missing-se"
ISA_LENGTH_CODE = "isa-length"
ISA_ELEMENT_WIDTH = "isa-element-width"
ISA_DELIMITERS = "isa-delimiters"
ISA11_VERSION = "isa11-version"
VERSION_MISMATCH = "version-mismatch"
ISA13_IEA02 = "isa13-iea02"
GS06_GE02 = "gs06-ge02"
ST02_SE02 = "st02-se02"
SE01_COUNT = "se01-count"
GE01_COUNT = "ge01-count"
IEA01_COUNT = "iea01-count"
TDS_TOTAL = "tds-total"
CTT01_COUNT = "ctt01-count"
DATE_FORMAT = "date-format"
TIME_FORMAT = "time-format"
NUMBER_FORMAT = "number-format"
UNEXPECTED_SEGMENT = "unexpected-segment"

CODES = {
    MISSING_ISA: "the text does not start with a readable ISA",
    MISSING_IEA: "the interchange has no IEA trailer",
    MISSING_GS: "a transaction set outside a functional group, or no group at all",
    MISSING_GE: "a functional group without its GE trailer",
    MISSING_ST: "data outside a transaction set, or a group without transaction sets",
    MISSING_SE: "a transaction set without its SE trailer",
    ISA_LENGTH_CODE: "the ISA is not 106 characters with its terminator",
    ISA_ELEMENT_WIDTH: "an ISA element is not its fixed width",
    ISA_DELIMITERS: "the component separator is a letter, digit or space, or another delimiter",
    ISA11_VERSION: "ISA11 is not U (before 5010) or not a distinct repetition separator (5010)",
    VERSION_MISMATCH: "GS08 is not the version ISA12 declares",
    ISA13_IEA02: "IEA02 does not repeat ISA13",
    GS06_GE02: "GE02 does not repeat GS06",
    ST02_SE02: "SE02 does not repeat ST02",
    SE01_COUNT: "SE01 is not the number of segments from ST to SE",
    GE01_COUNT: "GE01 is not the number of transaction sets in the group",
    IEA01_COUNT: "IEA01 is not the number of functional groups in the interchange",
    TDS_TOTAL: "TDS01 is missing or not the lines plus charges less allowances plus taxes",
    CTT01_COUNT: "CTT01 is not the number of IT1 lines",
    DATE_FORMAT: "a date that is not a real date in its format",
    TIME_FORMAT: "a time that is not a real time in its format",
    NUMBER_FORMAT: "a count, control number or amount that is not a number",
    UNEXPECTED_SEGMENT: "a segment outside any functional group, or after the IEA",
}

# Dates and times to check: segment id -> [(element, "date" or "time")].
_DATES = {
    "BIG": [(1, "date"), (3, "date")],
    "DTM": [(2, "date"), (3, "time")],
    "ITD": [(4, "date"), (6, "date")],
}
_REQUIRED_DATES = {("BIG", 1)}


@dataclass(frozen=True)
class Finding:
    """One problem: `code` (see CODES), the segment id, its 1-based position in the
    interchange, the element at fault (e.g. "ISA11", "SE01") or None, and what is wrong."""

    code: str
    segment: str
    position: int
    element: str | None
    message: str


def validate_x12(text: str) -> list[Finding]:
    """Check one X12 interchange; an empty list means it is valid."""
    try:
        interchange = read_interchange(text)
    except X12ParseError as exc:
        return [Finding(MISSING_ISA, "ISA", 1, None, str(exc))]
    return _Check(interchange).run()


@dataclass
class _Group:
    segment: Segment | None  # None when the GS is missing
    st_count: int = 0


@dataclass
class _Set:
    segment: Segment | None  # None when the ST is missing
    body: list[Segment] = field(default_factory=list)


class _Check:
    def __init__(self, interchange: Interchange):
        self.ic = interchange
        self.isa = interchange.segments[0]
        self.findings: list[Finding] = []
        self.group: _Group | None = None
        self.tset: _Set | None = None
        self.gs_count = 0
        self.group_missing_reported = False
        self.iea_seen = False
        self.after_iea_reported = False

    def add(self, code: str, seg: str, position: int, element: str | None, message: str):
        self.findings.append(Finding(code, seg, position, element, message))

    def run(self) -> list[Finding]:
        self._isa()
        for seg in self.ic.segments[1:]:
            if self.iea_seen:
                if not self.after_iea_reported:
                    self.add(UNEXPECTED_SEGMENT, seg.id, seg.position, None,
                             f"{seg.id} after the IEA; one interchange ends at its IEA")
                    self.after_iea_reported = True
                continue
            handler = getattr(self, f"_on_{seg.id.lower()}", None)
            if seg.id in ENVELOPE_IDS and handler is not None:
                handler(seg)
            else:
                self._data(seg)
        if not self.iea_seen:
            end = len(self.ic.segments) + 1
            self._close_set(end)
            self._close_group(end)
            self.add(MISSING_IEA, "IEA", end, None,
                     "the interchange ends without an IEA trailer")
        return self.findings

    # --- ISA ---------------------------------------------------------------------------

    def _isa(self) -> None:
        el = self.isa.elements
        for index, width in enumerate(ISA_WIDTHS, start=1):
            if len(el[index]) != width:
                self.add(ISA_ELEMENT_WIDTH, "ISA", 1, f"ISA{index:02d}",
                         f"ISA{index:02d} is {len(el[index])} characters ({el[index]!r}); "
                         f"it is fixed at {width}")
        if len(self.ic.isa_text) != ISA_LENGTH:
            self.add(ISA_LENGTH_CODE, "ISA", 1, None,
                     f"the ISA is {len(self.ic.isa_text)} characters with its terminator; "
                     f"it is fixed at {ISA_LENGTH}")
        d = self.ic.delimiters
        if not _usable(d.component) or d.component in (d.element, d.terminator):
            self.add(ISA_DELIMITERS, "ISA", 1, "ISA16",
                     f"the component separator ISA16 {d.component!r} is a letter, digit or space, "
                     "or the same as another delimiter")
        version, isa11 = el[12], el[11]
        if version < "00501":
            if isa11 != "U":
                self.add(ISA11_VERSION, "ISA", 1, "ISA11",
                         f"ISA11 is {isa11!r}; version {version} requires U")
        elif not (len(isa11) == 1 and _usable(isa11)) or isa11 in (
            d.element, d.component, d.terminator
        ):
            self.add(ISA11_VERSION, "ISA", 1, "ISA11",
                     f"ISA11 is {isa11!r}; from 5010 it is the repetition separator, one "
                     "character distinct from the other delimiters")
        if not is_date(el[9], 6):
            self.add(DATE_FORMAT, "ISA", 1, "ISA09", f"ISA09 {el[9]!r} is not a YYMMDD date")
        if not is_time(el[10], (4,)):
            self.add(TIME_FORMAT, "ISA", 1, "ISA10", f"ISA10 {el[10]!r} is not an HHMM time")
        for index in (12, 13):
            if not (el[index].isascii() and el[index].isdigit()):
                self.add(NUMBER_FORMAT, "ISA", 1, f"ISA{index}",
                         f"ISA{index} {el[index]!r} is not a number")

    # --- envelope segments -------------------------------------------------------------

    def _on_isa(self, seg: Segment) -> None:
        self.add(UNEXPECTED_SEGMENT, "ISA", seg.position, None,
                 "a second ISA before the first interchange's IEA")

    def _on_gs(self, seg: Segment) -> None:
        self._close_set(seg.position)
        self._close_group(seg.position)
        self.group = _Group(seg)
        self.gs_count += 1
        if not is_date(seg.get(4), 8):
            self.add(DATE_FORMAT, "GS", seg.position, "GS04",
                     f"GS04 {seg.get(4)!r} is not a CCYYMMDD date")
        if not is_time(seg.get(5), (4, 6, 7, 8)):
            self.add(TIME_FORMAT, "GS", seg.position, "GS05",
                     f"GS05 {seg.get(5)!r} is not an HHMM, HHMMSS or HHMMSSDD time")
        self._int(seg, 6)
        isa12 = self.isa.get(12)
        if seg.get(8)[:6] != isa12 + "0":
            self.add(VERSION_MISMATCH, "GS", seg.position, "GS08",
                     f"GS08 {seg.get(8)!r} does not match ISA12 {isa12!r} "
                     f"(expected {isa12}0 and an optional suffix)")

    def _on_st(self, seg: Segment) -> None:
        self._close_set(seg.position)
        if self.group is None:
            if not self.group_missing_reported:
                self.add(MISSING_GS, "GS", seg.position, None,
                         f"transaction set ST {seg.get(2)} is not inside a GS functional group")
                self.group_missing_reported = True
            self.group = _Group(None)
        self.group.st_count += 1
        self.tset = _Set(seg)

    def _on_se(self, seg: Segment) -> None:
        tset = self.tset
        if tset is None:
            self.add(MISSING_ST, "ST", seg.position, None,
                     f"SE {seg.get(2)} closes a transaction set that has no ST")
            return
        start = tset.segment
        if start is not None:
            count = self._int(seg, 1)
            actual = seg.position - start.position + 1
            if count is not None and count != actual:
                self.add(SE01_COUNT, "SE", seg.position, "SE01",
                         f"SE01 says {count} segments but ST {start.get(2)} to SE holds {actual}")
            if seg.get(2) != start.get(2):
                self.add(ST02_SE02, "SE", seg.position, "SE02",
                         f"SE02 {seg.get(2)!r} does not repeat ST02 {start.get(2)!r} "
                         f"(segment {start.position})")
            if start.get(1) == "810":
                self._invoice(tset, seg)
        self.tset = None

    def _on_ge(self, seg: Segment) -> None:
        self._close_set(seg.position)
        group = self.group
        if group is None:
            if not self.group_missing_reported:
                self.add(MISSING_GS, "GS", seg.position, None,
                         f"GE {seg.get(2)} closes a functional group that has no GS")
                self.group_missing_reported = True
            return
        if group.st_count == 0:
            self.add(MISSING_ST, "ST", seg.position, None,
                     "the functional group holds no transaction set")
        if group.segment is not None:
            count = self._int(seg, 1)
            if count is not None and count != group.st_count:
                self.add(GE01_COUNT, "GE", seg.position, "GE01",
                         f"GE01 says {count} transaction sets but the group holds "
                         f"{group.st_count}")
            if seg.get(2) != group.segment.get(6):
                self.add(GS06_GE02, "GE", seg.position, "GE02",
                         f"GE02 {seg.get(2)!r} does not repeat GS06 {group.segment.get(6)!r} "
                         f"(segment {group.segment.position})")
        self.group = None

    def _on_iea(self, seg: Segment) -> None:
        self._close_set(seg.position)
        self._close_group(seg.position)
        self.iea_seen = True
        if self.gs_count == 0 and not self.group_missing_reported:
            self.add(MISSING_GS, "GS", seg.position, None,
                     "the interchange holds no functional group")
        count = self._int(seg, 1)
        if count is not None and count != self.gs_count:
            self.add(IEA01_COUNT, "IEA", seg.position, "IEA01",
                     f"IEA01 says {count} functional groups but the interchange holds "
                     f"{self.gs_count}")
        if seg.get(2) != self.isa.get(13):
            self.add(ISA13_IEA02, "IEA", seg.position, "IEA02",
                     f"IEA02 {seg.get(2)!r} does not repeat ISA13 {self.isa.get(13)!r}")

    def _close_set(self, position: int) -> None:
        if self.tset is not None:
            start = self.tset.segment
            name = f"ST {start.get(2)} (segment {start.position})" if start else "the set"
            self.add(MISSING_SE, "SE", position, None,
                     f"transaction set {name} ends without an SE trailer")
            self.tset = None

    def _close_group(self, position: int) -> None:
        if self.group is not None:
            start = self.group.segment
            if start is not None:
                self.add(MISSING_GE, "GE", position, None,
                         f"functional group GS {start.get(6)} (segment {start.position}) "
                         "ends without a GE trailer")
            self.group = None

    # --- data segments -----------------------------------------------------------------

    def _data(self, seg: Segment) -> None:
        if self.tset is None:
            if self.group is None:
                self.add(UNEXPECTED_SEGMENT, seg.id, seg.position, None,
                         f"{seg.id} outside any functional group")
                return
            self.add(MISSING_ST, "ST", seg.position, None,
                     f"{seg.id} is not inside a transaction set (no ST before it)")
            self.tset = _Set(None)
            self.group.st_count += 1
        self.tset.body.append(seg)
        for index, kind in _DATES.get(seg.id, ()):
            value = seg.get(index)
            if not value and (seg.id, index) not in _REQUIRED_DATES:
                continue
            name = f"{seg.id}{index:02d}"
            if kind == "date" and not is_date(value, 8):
                self.add(DATE_FORMAT, seg.id, seg.position, name,
                         f"{name} {value!r} is not a CCYYMMDD date")
            elif kind == "time" and not is_time(value, (4, 6, 7, 8)):
                self.add(TIME_FORMAT, seg.id, seg.position, name,
                         f"{name} {value!r} is not an HHMM or HHMMSS time")

    def _invoice(self, tset: _Set, se: Segment) -> None:
        """TDS01 against the lines, charges and taxes; CTT01 against the IT1 count.

        The sums are exact whatever the size of the numbers in the file, so a 30-digit
        quantity gives a total finding, not a rounded total or an exception.
        """
        with localcontext(EXACT):
            try:
                self._total(tset, se)
            except DecimalException as exc:
                self.add(NUMBER_FORMAT, "TDS", se.position, "TDS01",
                         f"TDS01 cannot be checked: the amounts of the 810 cannot be summed "
                         f"({type(exc).__name__})")
        for ctt in (seg for seg in tset.body if seg.id == "CTT"):
            count = self._int(ctt, 1)
            if count is not None and count != _it1_count(tset):
                self.add(CTT01_COUNT, "CTT", ctt.position, "CTT01",
                         f"CTT01 says {count} line items but the 810 has {_it1_count(tset)} IT1")

    def _total(self, tset: _Set, se: Segment) -> None:
        expected = Decimal(0)
        verifiable = True
        for seg in tset.body:
            if seg.id == "IT1":
                quantity, price = self._r(seg, 2), self._r(seg, 4)
                if quantity is None or price is None:
                    verifiable = False
                else:
                    expected += round_cents(quantity * price)
            elif seg.id == "SAC" and seg.get(5):
                amount = self._n2(seg, 5)
                if amount is None:
                    verifiable = False
                elif seg.get(1) == "C":
                    expected += amount
                elif seg.get(1) == "A":
                    expected -= amount
            elif seg.id == "TXI" and seg.get(2):
                amount = self._r(seg, 2)
                if amount is None:
                    verifiable = False
                else:
                    expected += amount
        tds = [seg for seg in tset.body if seg.id == "TDS"]
        if not tds:
            self.add(TDS_TOTAL, "TDS", se.position, "TDS01",
                     "the 810 has no TDS segment; TDS01 states the invoice total")
        else:
            total = self._n2(tds[0], 1)
            if total is not None and verifiable and total != expected:
                self.add(TDS_TOTAL, "TDS", tds[0].position, "TDS01",
                         f"TDS01 {tds[0].get(1)} is {total}, but the IT1 lines plus charges "
                         f"less allowances plus taxes come to {expected}")

    # --- numbers -----------------------------------------------------------------------

    def _number(self, seg: Segment, index: int, parse, kind: str):
        value = seg.get(index)
        try:
            return parse(value)
        except ValueError:
            name = f"{seg.id}{index:02d}"
            self.add(NUMBER_FORMAT, seg.id, seg.position, name,
                     f"{name} {value!r} is not {kind}")
            return None

    def _int(self, seg: Segment, index: int) -> int | None:
        return self._number(seg, index, parse_int, "a whole number")

    def _r(self, seg: Segment, index: int) -> Decimal | None:
        return self._number(seg, index, parse_r, "a decimal number")

    def _n2(self, seg: Segment, index: int) -> Decimal | None:
        return self._number(seg, index, parse_n2, "an amount with two implied decimals")


def _it1_count(tset: _Set) -> int:
    return sum(1 for seg in tset.body if seg.id == "IT1")


def _usable(char: str) -> bool:
    """A delimiter candidate: one character that is not a letter, digit or space."""
    return len(char) == 1 and not char.isalnum() and char != " "
