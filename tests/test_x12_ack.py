"""997 functional acknowledgements: written for a received 810, and read back.

The 810 acknowledged is a small hand-written 4010 invoice (positions from ST: ST 1, BIG 2,
N1 3, DTM 4, IT1 5 and 6, TDS 7, TXI 8, SAC 9 and 10, CTT 11, SE 12). Each 997 written
is compared with the interchange written out by hand (SE01 counted in the comment), checked
by q2c's validator and pyx12's envelope reader, and parsed back. A 997 written by hand in
5010 with other delimiters, answering two transaction sets, is parsed too.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from pyx12.x12file import X12Reader

from q2c.x12 import (
    Controls,
    FunctionalAck,
    SegmentError,
    TransactionAck,
    X12ParseError,
    parse_997,
    validate_x12,
    write_997,
)

RECEIVED_810 = "".join(f"{segment}~\n" for segment in [
    "ISA*00*          *00*          *ZZ*NORTHWINDUS    *ZZ*ACMERETAIL     "
    "*260302*1405*U*00401*000000042*0*P*>",
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
])
ACKED_AT = dt.datetime(2026, 3, 3, 9, 15)
CONTROLS = Controls(isa=901, gs=31, st=1)
ISA_997 = (
    "ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*NORTHWINDUS    "
    "*260303*0915*U*00401*000000901*0*P*>"
)


def envelope_of(segments: list[str]) -> str:
    return "".join(f"{segment}~\n" for segment in [
        ISA_997,
        "GS*FA*ACMERETAIL*NORTHWINDUS*20260303*0915*31*X*004010",
        "ST*997*0001",
        *segments,
        f"SE*{len(segments) + 2}*0001",
        "GE*1*31",
        "IEA*1*000000901",
    ])


def pyx12_errors(text: str) -> list[tuple]:
    reader = X12Reader(io.StringIO(text))
    for _ in reader:
        pass
    reader.cleanup()
    return reader.pop_errors()


def test_received_810_is_valid_to_start_with():
    assert validate_x12(RECEIVED_810) == []


def test_accepted_997_swaps_sender_and_receiver_and_parses_back():
    text = write_997(RECEIVED_810, controls=CONTROLS, created_at=ACKED_AT)

    # ST 1, AK1 2, AK2 3, AK5 4, AK9 5, SE 6.
    assert text == envelope_of(["AK1*IN*42", "AK2*810*0042", "AK5*A", "AK9*A*1*1*1"])
    assert "SE*6*0001~" in text
    assert validate_x12(text) == [] and pyx12_errors(text) == []
    assert parse_997(text) == [FunctionalAck(
        sender_id="ACMERETAIL", receiver_id="NORTHWINDUS", functional_id="IN",
        group_control=42, status="A",
        transactions=(TransactionAck(42, "810", "A", ()),), accepted=1, received=1,
    )]


def test_accepted_with_errors_997_names_segment_and_element():
    errors = [SegmentError("N1", 3, element=2, element_code="5", element_reference="93")]
    text = write_997(RECEIVED_810, "E", errors, controls=CONTROLS, created_at=ACKED_AT)

    # ST 1, AK1 2, AK2 3, AK3 4, AK4 5, AK5 6, AK9 7, SE 8.
    assert text == envelope_of([
        "AK1*IN*42", "AK2*810*0042", "AK3*N1*3**8", "AK4*2*93*5", "AK5*E*5", "AK9*E*1*1*1",
    ])
    assert validate_x12(text) == [] and pyx12_errors(text) == []
    [ack] = parse_997(text)
    assert (ack.status, ack.accepted, ack.received) == ("E", 1, 1)
    assert ack.transactions == (TransactionAck(
        42, "810", "E", ("N1 at segment 3, element 02: data element too long",)),)


def test_rejected_997_lists_every_segment_in_error():
    errors = [
        SegmentError("IT1", 5, element=2, element_code="1", element_reference="358",
                     loop="IT1"),
        SegmentError("DTM", 4, code="7"),
    ]
    text = write_997(RECEIVED_810, "R", errors, controls=CONTROLS, created_at=ACKED_AT)

    # ST 1, AK1 2, AK2 3, AK3 4, AK4 5, AK3 6, AK5 7, AK9 8, SE 9.
    assert text == envelope_of([
        "AK1*IN*42", "AK2*810*0042", "AK3*IT1*5*IT1*8", "AK4*2*358*1", "AK3*DTM*4**7",
        "AK5*R*5", "AK9*R*1*1*0",
    ])
    assert validate_x12(text) == [] and pyx12_errors(text) == []
    [ack] = parse_997(text)
    assert (ack.sender_id, ack.group_control, ack.status, ack.accepted, ack.received) == (
        "ACMERETAIL", 42, "R", 0, 1)
    assert ack.transactions == (TransactionAck(42, "810", "R", (
        "IT1 at segment 5, element 02: mandatory data element missing",
        "DTM at segment 4: segment not in proper sequence",
    )),)


def test_997_for_a_5010_810_keeps_its_delimiters_and_repetition_separator():
    received = (
        RECEIVED_810.replace("*", "|").replace(">", ":").replace("~\n", "\n")
        .replace("|U|00401|", "|!|00501|").replace("|004010\n", "|005010\n")
    )
    assert validate_x12(received) == []
    text = write_997(received, "R", [SegmentError("TDS", 7, element=1, element_code="6",
                                                  bad_value="26,58")],
                     controls=Controls(902, 32, 2), created_at=ACKED_AT)

    assert text.split("\n")[:3] == [
        "ISA|00|          |00|          |ZZ|ACMERETAIL     |ZZ|NORTHWINDUS    "
        "|260303|0915|!|00501|000000902|0|P|:",
        "GS|FA|ACMERETAIL|NORTHWINDUS|20260303|0915|32|X|005010",
        "ST|997|0002",
    ]
    assert "AK4|1||6|26,58\n" in text
    assert validate_x12(text) == [] and pyx12_errors(text) == []
    [ack] = parse_997(text)
    assert ack.transactions[0].errors == (
        "TDS at segment 7, element 01: invalid character in data element (value '26,58')",)


# A partner's 997 in 5010, by hand: "^" elements, ":" components, "{" repetitions, "'"
# terminators and CR LF line breaks. It answers group 1234: set 0001 accepted, set 0002
# rejected. ST 1, AK1 2, AK2 3, AK5 4, AK2 5, AK3 6, AK4 7, AK4 8, AK3 9, AK5 10, AK9 11,
# SE 12.
HAND_997 = "\r\n".join([
    "ISA^00^          ^00^          ^ZZ^ACMERETAIL     ^ZZ^NORTHWINDUS    "
    "^260303^0915^{^00501^000000555^0^P^:'",
    "GS^FA^ACMERETAIL^NORTHWINDUS^20260303^0915^555^X^005010'",
    "ST^997^0555'",
    "AK1^IN^1234'",
    "AK2^810^0001'",
    "AK5^A'",
    "AK2^810^0002'",
    "AK3^IT1^7^IT1^8'",
    "AK4^2^358^1'",
    "AK4^4:1^212^6^1O.5'",
    "AK3^DTM^5^^3'",
    "AK5^R^5'",
    "AK9^P^2^2^1'",
    "SE^12^0555'",
    "GE^1^555'",
    "IEA^1^000000555'",
]) + "\r\n"


def test_a_hand_written_997_with_other_delimiters_parses_into_a_partial_acceptance():
    assert validate_x12(HAND_997) == []
    assert parse_997(HAND_997) == [FunctionalAck(
        sender_id="ACMERETAIL", receiver_id="NORTHWINDUS", functional_id="IN",
        group_control=1234, status="P",
        transactions=(
            TransactionAck(1, "810", "A", ()),
            TransactionAck(2, "810", "R", (
                "IT1 at segment 7, element 02: mandatory data element missing",
                "IT1 at segment 7, element 04-1: invalid character in data element "
                "(value '1O.5')",
                "DTM at segment 5: mandatory segment missing",
            )),
        ),
        accepted=1, received=2,
    )]


def test_group_level_error_codes_are_read_as_sentences():
    text = HAND_997.replace("AK9^P^2^2^1'", "AK9^R^2^2^0^5'")
    [ack] = parse_997(text)
    assert (ack.status, ack.accepted) == ("R", 0)
    assert ack.errors == (
        "functional group: number of included transaction sets does not match actual count",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (RECEIVED_810, "the interchange holds no 997 transaction set"),
        (HAND_997.replace("AK2^810^0002'", "AK8^810^0002'"),
         "997 segment 7 (AK8): not a 997 segment"),
        (HAND_997.replace("AK2^810^0002'", ""), "997 segment 7 (AK3): AK3 outside an AK2"),
        (HAND_997.replace("AK1^IN^1234'", "AK1^IN^12X4'"),
         "997 segment 4 (AK1): AK102 '12X4' is not a number"),
        (HAND_997.replace("AK9^P^2^2^1'", "AK9^P^2^two^1'"),
         "997 segment 13 (AK9): AK903 'two' is not a number"),
        (HAND_997.replace("AK9^P^2^2^1'", ""), "997 segment 13 (SE): the 997 ends without AK9"),
        ("GS*FA*X~", "does not start with an ISA segment"),
        (HAND_997.replace("AK1^IN^1234'", f"AK1^IN^{'1' * 5000}'"),
         "997 segment 4 (AK1): AK102 has 5000 digits; X12 numbers here hold at most 9"),
        (HAND_997.replace("AK9^P^2^2^1'", f"AK9^P^2^{'2' * 5000}^1'"),
         "997 segment 13 (AK9): AK903 has 5000 digits; X12 numbers here hold at most 9"),
        (HAND_997.replace("AK4^2^358^1'", f"AK4^{'2' * 5000}^358^1'"),
         "997 segment 9 (AK4): AK401 has 5000 digits; X12 numbers here hold at most 9"),
    ],
)
def test_an_unreadable_997_is_refused_naming_the_segment(text, message):
    with pytest.raises(X12ParseError, match=re.escape(message)):
        parse_997(text)


def test_write_997_refuses_contradictory_requests():
    with pytest.raises(ValueError, match="status A .* reports no errors"):
        write_997(RECEIVED_810, "A", [SegmentError("N1", 3)], controls=CONTROLS,
                  created_at=ACKED_AT)
    with pytest.raises(ValueError, match="997 status 'Q'"):
        write_997(RECEIVED_810, "Q", controls=CONTROLS, created_at=ACKED_AT)
    with pytest.raises(ValueError, match="no transaction set with ST02 7"):
        write_997(RECEIVED_810, "R", [SegmentError("N1", 3, st_control=7)],
                  controls=CONTROLS, created_at=ACKED_AT)
