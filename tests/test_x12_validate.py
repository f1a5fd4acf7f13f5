"""q2c's X12 validator: every kind of finding, each raised by a small broken file.

The valid 810 below is written by hand. Its sums, worked out once: IT1 lines 2 x 10.50 =
21.00 and 3 x 0.25 = 0.75, plus the 5.00 freight charge, less the 2.00 allowance, plus
1.83 tax = 26.58, so TDS01 is 2658; ST to SE holds 12 segments; positions in the
interchange run ISA 1, GS 2, ST 3, BIG 4, N1 5, DTM 6, IT1 7 and 8, TDS 9, TXI 10, SAC 11
and 12, CTT 13, SE 14, GE 15, IEA 16. Each case breaks one thing and states the exact
findings (code, segment, position, element) it must produce; every case runs twice, with
the file's own delimiters and with other ones ("|", "\\", "'" and no line breaks).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from q2c.x12 import validate_x12
from q2c.x12.syntax import parse_r
from q2c.x12.validate import CODES

ISA = (
    "ISA*00*          *00*          *ZZ*NORTHWINDUS    *ZZ*ACMERETAIL     "
    "*260302*1405*U*00401*000000042*0*P*>"
)
VALID = [
    ISA,
    "GS*IN*NORTHWINDUS*ACMERETAIL*20260302*1405*42*X*004010",
    "ST*810*0042",
    "BIG*20260302*INV-7**PO-1***DI",
    "N1*BT*Acme Retail",
    "DTM*011*20260227",
    "IT1*1*2*EA*10.5",
    "IT1*2*3*EA*.25",
    "TDS*2658",
    "TXI*ST*1.83",
    "SAC*C*D240***500",
    "SAC*A*C310***200",
    "CTT*2",
    "SE*12*0042",
    "GE*1*42",
    "IEA*1*000000042",
]


def text_of(segments: list[str]) -> str:
    return "".join(f"{segment}~\n" for segment in segments)


def redelimited(text: str) -> str:
    """The same interchange with "|" elements, "\\" components, "'" terminators, one line."""
    return text.replace("*", "|").replace(">", "\\").replace("~\n", "'")


def replaced(position: int, segment: str) -> list[str]:
    segments = list(VALID)
    segments[position - 1] = segment
    return segments


def without(*positions: int) -> list[str]:
    return [segment for index, segment in enumerate(VALID, start=1) if index not in positions]


def isa_with(element: int, value: str) -> str:
    elements = ISA.split("*")
    elements[element] = value
    return "*".join(elements)


CASES = {
    "no ISA": (without(1), [("missing-isa", "ISA", 1, None)]),
    "no IEA": (without(16), [("missing-iea", "IEA", 16, None)]),
    "no GS": (without(2), [("missing-gs", "GS", 2, None), ("iea01-count", "IEA", 15, "IEA01")]),
    "no GE": (without(15), [("missing-ge", "GE", 15, None)]),
    "no ST": (without(3), [("missing-st", "ST", 3, None)]),
    "no SE": (without(14), [("missing-se", "SE", 14, None)]),
    "ISA06 one short": (
        replaced(1, isa_with(6, "NORTHWINDUS   ")),
        [("isa-element-width", "ISA", 1, "ISA06"), ("isa-length", "ISA", 1, None)],
    ),
    "ISA16 a letter": (replaced(1, isa_with(16, "A")), [("isa-delimiters", "ISA", 1, "ISA16")]),
    "4010 ISA11 not U": (replaced(1, isa_with(11, "^")), [("isa11-version", "ISA", 1, "ISA11")]),
    "5010 ISA11 is the component separator": (
        [isa_with(11, ">").replace("*00401*", "*00501*"),
         VALID[1].replace("004010", "005010"), *VALID[2:]],
        [("isa11-version", "ISA", 1, "ISA11")],
    ),
    "5010 ISA11 still U": (
        [ISA.replace("*00401*", "*00501*"), VALID[1].replace("004010", "005010"), *VALID[2:]],
        [("isa11-version", "ISA", 1, "ISA11")],
    ),
    "GS08 another version": (
        replaced(2, VALID[1].replace("004010", "005010")),
        [("version-mismatch", "GS", 2, "GS08")],
    ),
    "IEA02 not ISA13": (replaced(16, "IEA*1*000000043"), [("isa13-iea02", "IEA", 16, "IEA02")]),
    "GE02 not GS06": (replaced(15, "GE*1*43"), [("gs06-ge02", "GE", 15, "GE02")]),
    "SE02 not ST02": (replaced(14, "SE*12*0043"), [("st02-se02", "SE", 14, "SE02")]),
    "SE01 miscounted": (replaced(14, "SE*13*0042"), [("se01-count", "SE", 14, "SE01")]),
    "GE01 miscounted": (replaced(15, "GE*2*42"), [("ge01-count", "GE", 15, "GE01")]),
    "IEA01 miscounted": (replaced(16, "IEA*2*000000042"), [("iea01-count", "IEA", 16, "IEA01")]),
    "TDS one cent off": (replaced(9, "TDS*2659"), [("tds-total", "TDS", 9, "TDS01")]),
    "no TDS": (
        [*VALID[:8], *VALID[9:13], "SE*11*0042", *VALID[14:]],
        [("tds-total", "TDS", 13, "TDS01")],
    ),
    "CTT01 miscounted": (replaced(13, "CTT*3"), [("ctt01-count", "CTT", 13, "CTT01")]),
    "ISA09 February 30": (replaced(1, isa_with(9, "260230")),
                          [("date-format", "ISA", 1, "ISA09")]),
    "GS04 month 03 day 32": (
        replaced(2, VALID[1].replace("20260302", "20260332")),
        [("date-format", "GS", 2, "GS04")],
    ),
    "BIG01 February 29 of 2026": (
        replaced(4, "BIG*20260229*INV-7**PO-1***DI"), [("date-format", "BIG", 4, "BIG01")],
    ),
    "DTM02 six digits": (replaced(6, "DTM*011*260227"), [("date-format", "DTM", 6, "DTM02")]),
    "ISA10 24:60": (replaced(1, isa_with(10, "2460")), [("time-format", "ISA", 1, "ISA10")]),
    "GS05 minute 60": (
        replaced(2, VALID[1].replace("*1405*", "*1460*")), [("time-format", "GS", 2, "GS05")],
    ),
    "SE01 not a number": (replaced(14, "SE*1Z*0042"), [("number-format", "SE", 14, "SE01")]),
    "IT104 with a decimal comma": (
        replaced(7, "IT1*1*2*EA*10,5"), [("number-format", "IT1", 7, "IT104")],
    ),
    "a segment after IEA": (
        [*VALID, "IT1*3*1*EA*1"], [("unexpected-segment", "IT1", 17, None)],
    ),
}


def test_the_hand_written_810_is_valid_with_either_delimiters():
    assert validate_x12(text_of(VALID)) == []
    assert validate_x12(redelimited(text_of(VALID))) == []


@pytest.mark.parametrize("delimiters", ["own", "other"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_file_gives_exactly_its_findings(case, delimiters):
    segments, expected = CASES[case]
    text = text_of(segments)
    if delimiters == "other":
        text = redelimited(text)

    findings = validate_x12(text)

    assert [(f.code, f.segment, f.position, f.element) for f in findings] == expected
    for finding in findings:
        assert finding.message
        if finding.element is not None:
            assert finding.element in finding.message


def test_every_kind_of_finding_has_a_broken_file_that_raises_it():
    raised = {code for _, expected in CASES.values() for code, *_ in expected}
    assert raised == set(CODES)
    assert len(CODES) == 23


def test_findings_say_what_is_wrong_in_numbers():
    [finding] = validate_x12(text_of(replaced(9, "TDS*2659")))
    assert finding.message == (
        "TDS01 2659 is 26.59, but the IT1 lines plus charges less allowances plus taxes "
        "come to 26.58"
    )
    [finding] = validate_x12(text_of(replaced(14, "SE*13*0042")))
    assert finding.message == "SE01 says 13 segments but ST 0042 to SE holds 12"


@pytest.mark.parametrize(("quantity", "lines_come_to"), [
    # Hand-worked: quantity x 10.00, plus 0.75 for line 2, 5.00 freight, less 2.00
    # allowance, plus 1.83 tax, so quantity x 10 + 5.58.
    ("9" * 29, "9" * 29 + "5.58"),  # (10^29 - 1) x 10 + 5.58
    ("9" * 40 + ".5", "1" + "0" * 41 + ".58"),  # (10^41 - 5) + 5.58
    ("1" + "0" * 5000, "1" + "0" * 5000 + "5.58"),  # 10^5001 + 5.58
])
def test_a_quantity_beyond_28_digits_is_a_total_finding_not_a_crash(quantity, lines_come_to):
    findings = validate_x12(text_of(replaced(7, f"IT1*1*{quantity}*EA*10")))

    assert [(f.code, f.segment, f.position, f.element) for f in findings] == [
        ("tds-total", "TDS", 9, "TDS01")]
    assert findings[0].message.endswith(f"taxes come to {lines_come_to}")


def test_an_amount_too_long_to_be_a_number_is_a_number_finding():
    findings = validate_x12(text_of(replaced(11, "SAC*C*D240***" + "5" * 5000)))

    assert [(f.code, f.segment, f.position, f.element) for f in findings] == [
        ("number-format", "SAC", 11, "SAC05")]


@pytest.mark.parametrize("text", ["١٢", "1e3", "+1", "", " 1", "1.2.3", "Infinity", "NaN"])
def test_an_x12_decimal_is_ascii_digits_with_an_optional_sign_and_point(text):
    with pytest.raises(ValueError, match="not an X12 decimal"):
        parse_r(text)


@pytest.mark.parametrize(("text", "value"), [("12", "12"), ("-1.5", "-1.5"), (".5", "0.5")])
def test_plain_x12_decimals_parse_exactly(text, value):
    assert parse_r(text) == Decimal(value)
