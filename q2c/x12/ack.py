"""997 functional acknowledgements: read the partner's answer to our 810s, and write one.

A partner's translator answers each functional group it receives with a 997: AK1 names our
group (GS06), an AK2 ... AK5 pair answers each transaction set (ST02) with A accepted, E
accepted with errors noted, R rejected (or M, W, X for security failures), AK3 and AK4 in
between name the segment and element at fault, and AK9 sums up the group. `parse_997`
turns that into `FunctionalAck` records whose error texts name the segment, its position
in the transaction set and the element, so the delivery audit trail reads without an X12
manual at hand. Any delimiters are read, from the 997's own ISA.

`write_997` acknowledges a received 810 the way a partner would (sender and receiver
swapped, the 810's delimiters and version); tests and the partner simulator use it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from q2c.x12 import envelope
from q2c.x12.control import Controls
from q2c.x12.syntax import Interchange, Segment, X12ParseError, read_interchange

# X12 data element 720: segment syntax error code (AK304).
SEGMENT_ERRORS = {
    "1": "unrecognized segment ID",
    "2": "unexpected segment",
    "3": "mandatory segment missing",
    "4": "loop occurs over maximum times",
    "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set",
    "7": "segment not in proper sequence",
    "8": "segment has data element errors",
}
# Data element 723: data element syntax error code (AK403).
ELEMENT_ERRORS = {
    "1": "mandatory data element missing",
    "2": "conditional required data element missing",
    "3": "too many data elements",
    "4": "data element too short",
    "5": "data element too long",
    "6": "invalid character in data element",
    "7": "invalid code value",
    "8": "invalid date",
    "9": "invalid time",
    "10": "exclusion condition violated",
    "12": "too many repetitions",
    "13": "too many components",
}
# Data element 718: transaction set syntax error code (AK502..AK506).
SET_ERRORS = {
    "1": "transaction set not supported",
    "2": "transaction set trailer missing",
    "3": "transaction set control number in header and trailer do not match",
    "4": "number of included segments does not match actual count",
    "5": "one or more segments in error",
    "6": "missing or invalid transaction set identifier",
    "7": "missing or invalid transaction set control number",
    "23": "transaction set control number not unique within the functional group",
}
# Data element 716: functional group syntax error code (AK905..AK909).
GROUP_ERRORS = {
    "1": "functional group not supported",
    "2": "functional group version not supported",
    "3": "functional group trailer missing",
    "4": "group control number in the functional group header and trailer do not agree",
    "5": "number of included transaction sets does not match actual count",
    "6": "group control number violates syntax",
}
STATUSES = ("A", "E", "R")
# Control numbers (AK102, AK202) and counts (AK302, AK401, AK9) are at most 9 digits in X12.
MAX_DIGITS = 9


@dataclass(frozen=True)
class TransactionAck:
    """The answer to one transaction set: AK2 (set id, ST02) and AK5 (status), with the
    AK3/AK4 errors and AK5 codes as sentences."""

    st_control: int
    transaction_set: str
    status: str
    errors: tuple[str, ...]


@dataclass(frozen=True)
class FunctionalAck:
    """The answer to one functional group: AK1 and AK9.

    `sender_id` / `receiver_id` are the 997's ISA06 and ISA08 without padding (the partner
    and us); `group_control` is AK102, the GS06 of the group acknowledged; `status` is
    AK901 (A, E, P partially accepted, R, ...); `received` and `accepted` are AK903 and
    AK904; `errors` are the AK905.. group error codes as sentences.
    """

    sender_id: str
    receiver_id: str
    functional_id: str
    group_control: int
    status: str
    transactions: tuple[TransactionAck, ...]
    accepted: int
    received: int
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentError:
    """One error for `write_997`: an AK3 segment note and, with `element`, its AK4.

    `position` is the segment's position in the transaction set (ST is 1); `st_control`
    picks the transaction set when the interchange holds several.
    """

    segment: str  # AK301
    position: int  # AK302
    code: str = "8"  # AK304, SEGMENT_ERRORS
    element: int | None = None  # AK401
    element_code: str = "1"  # AK403, ELEMENT_ERRORS
    element_reference: str | None = None  # AK402, the data element number
    bad_value: str | None = None  # AK404
    loop: str | None = None  # AK303
    st_control: int | None = None


def parse_997(text: str) -> list[FunctionalAck]:
    """Every functional group acknowledged in the 997s of one interchange.

    Raises:
        X12ParseError: The text is not a readable 997; the message names the segment.
    """
    ic = read_interchange(text)
    reader = _Reader(ic)
    return reader.read()


class _Reader:
    def __init__(self, ic: Interchange):
        self.ic = ic
        isa = ic.segments[0]
        self.sender, self.receiver = isa.get(6).strip(), isa.get(8).strip()
        self.acks: list[FunctionalAck] = []
        self.set_id: str | None = None
        self.group: dict | None = None
        self.tx: dict | None = None
        self.ak3: Segment | None = None

    def fail(self, seg: Segment, problem: str) -> X12ParseError:
        return X12ParseError(f"997 segment {seg.position} ({seg.id}): {problem}")

    def number(self, seg: Segment, index: int, value: str | None = None) -> int:
        """Element `index` (or `value`, a part of it) as a count or control number."""
        value = seg.get(index) if value is None else value
        name = f"{seg.id}{index:02d}"
        if not (value.isascii() and value.isdigit()):
            raise self.fail(seg, f"{name} {value!r} is not a number")
        if len(value) > MAX_DIGITS:
            raise self.fail(seg, f"{name} has {len(value)} digits; X12 numbers here hold at "
                                 f"most {MAX_DIGITS}")
        return int(value)

    def read(self) -> list[FunctionalAck]:
        saw_997 = False
        for seg in self.ic.segments[1:]:
            if seg.id == "ST":
                self.set_id = seg.get(1)
                saw_997 = saw_997 or self.set_id == "997"
            elif seg.id == "SE":
                if self.group is not None:
                    raise self.fail(seg, "the 997 ends without AK9 for AK1 "
                                         f"{self.group['control']}")
                self.set_id = None
            elif self.set_id == "997":
                handler = getattr(self, f"_{seg.id.lower()}", None)
                if handler is None:
                    raise self.fail(seg, "not a 997 segment (expected AK1..AK9)")
                handler(seg)
        if not saw_997:
            raise X12ParseError("the interchange holds no 997 transaction set (ST*997)")
        return self.acks

    def _ak1(self, seg: Segment) -> None:
        if self.group is not None:
            raise self.fail(seg, "AK1 before the AK9 of the previous group")
        self.group = {"id": seg.get(1), "control": self.number(seg, 2), "sets": []}

    def _ak2(self, seg: Segment) -> None:
        if self.group is None:
            raise self.fail(seg, "AK2 outside an AK1 group response")
        if self.tx is not None:
            raise self.fail(seg, "AK2 before the AK5 of the previous transaction set")
        self.tx = {"set": seg.get(1), "control": self.number(seg, 2), "errors": []}
        self.ak3 = None

    def _ak3(self, seg: Segment) -> None:
        if self.tx is None:
            raise self.fail(seg, "AK3 outside an AK2 transaction set response")
        self.number(seg, 2)
        self.ak3 = seg
        self.tx["errors"].append(
            f"{seg.get(1)} at segment {seg.get(2)}: "
            f"{SEGMENT_ERRORS.get(seg.get(4), 'error code ' + seg.get(4))}"
        )
        self.tx["ak3_open"] = True

    def _ak4(self, seg: Segment) -> None:
        if self.tx is None or self.ak3 is None:
            raise self.fail(seg, "AK4 without the AK3 segment it belongs to")
        parts = seg.get(1).split(self.ic.delimiters.component)
        if not (parts[0].isascii() and parts[0].isdigit()):
            raise self.fail(seg, f"AK401 {seg.get(1)!r} is not an element position")
        element = f"{self.number(seg, 1, parts[0]):02d}"
        if len(parts) > 1 and parts[1]:
            element += f"-{parts[1]}"
        code = seg.get(3)
        message = (f"{self.ak3.get(1)} at segment {self.ak3.get(2)}, element {element}: "
                   f"{ELEMENT_ERRORS.get(code, 'error code ' + code)}")
        if seg.get(4):
            message += f" (value {seg.get(4)!r})"
        if self.tx.pop("ak3_open", False):
            self.tx["errors"].pop()  # the element sentence replaces the segment one
        self.tx["errors"].append(message)

    def _ak5(self, seg: Segment) -> None:
        if self.tx is None:
            raise self.fail(seg, "AK5 without its AK2")
        status = seg.get(1)
        if not status:
            raise self.fail(seg, "AK501 (the transaction set status) is empty")
        errors = list(self.tx["errors"])
        for code in seg.elements[2:7]:
            if code and not (code == "5" and errors):
                errors.append(f"transaction set: {SET_ERRORS.get(code, 'error code ' + code)}")
        self.group["sets"].append(
            TransactionAck(self.tx["control"], self.tx["set"], status, tuple(errors))
        )
        self.tx, self.ak3 = None, None

    def _ak9(self, seg: Segment) -> None:
        if self.group is None:
            raise self.fail(seg, "AK9 without its AK1")
        if self.tx is not None:
            raise self.fail(seg, "AK9 before the AK5 of transaction set "
                                 f"{self.tx['control']}")
        status = seg.get(1)
        if not status:
            raise self.fail(seg, "AK901 (the group status) is empty")
        received, accepted = self.number(seg, 3), self.number(seg, 4)
        self.number(seg, 2)
        errors = tuple(f"functional group: {GROUP_ERRORS.get(code, 'error code ' + code)}"
                       for code in seg.elements[5:10] if code)
        self.acks.append(FunctionalAck(
            self.sender, self.receiver, self.group["id"], self.group["control"], status,
            tuple(self.group["sets"]), accepted, received, errors,
        ))
        self.group = None


def write_997(
    interchange: str,
    status: str = "A",
    errors: Sequence[SegmentError] = (),
    *,
    controls: Controls,
    created_at: dt.datetime,
) -> str:
    """The 997 a partner sends back for a received 810 interchange (one functional group).

    Args:
        interchange: The 810 interchange acknowledged.
        status: A (accepted), E (accepted, errors noted) or R (rejected), for every
            transaction set of the group and for the group.
        errors: The segment and element errors to report (AK3/AK4); none with A.
        controls: The 997's own ISA13, GS06 and ST02.
        created_at: When the 997 is made.

    Raises:
        ValueError: An unknown status, errors with A, or an error for a set not received.
        X12ParseError: The received text is not a readable interchange with one group.
    """
    if status not in STATUSES:
        raise ValueError(f"997 status {status!r}: use one of {STATUSES}")
    if status == "A" and errors:
        raise ValueError("a 997 with status A (accepted) reports no errors; use E or R")
    received = read_interchange(interchange)
    isa = received.segments[0]
    groups = [seg for seg in received.segments if seg.id == "GS"]
    if len(groups) != 1:
        raise X12ParseError(f"the interchange holds {len(groups)} functional groups; "
                            "write_997 acknowledges exactly one")
    gs = groups[0]
    sets = [seg for seg in received.segments if seg.id == "ST"]
    if not sets:
        raise X12ParseError(f"GS at segment {gs.position} holds no transaction set")
    by_set = _errors_by_set(sets, errors)

    body: list[list[str]] = [["AK1", gs.get(1), gs.get(6)]]
    for st in sets:
        body.append(["AK2", st.get(1), st.get(2)])
        for error in by_set[st.get(2)]:
            body.append(["AK3", error.segment, str(error.position), error.loop or "",
                         error.code])
            if error.element is not None:
                body.append(["AK4", str(error.element), error.element_reference or "",
                             error.element_code, error.bad_value or ""])
        body.append(["AK5", status] + (["5"] if status != "A" and by_set[st.get(2)] else []))
    accepted = 0 if status == "R" else len(sets)
    body.append(["AK9", status, str(len(sets)), str(len(sets)), str(accepted)])

    delimiters = received.delimiters
    return envelope.interchange(
        "997", body,
        functional_id="FA",
        parties=envelope.Parties(isa.get(7), isa.get(8).strip(), isa.get(5), isa.get(6).strip(),
                        gs.get(3), gs.get(2)),
        options=envelope.EnvelopeOptions(
            isa.get(12), gs.get(8), delimiters, isa.get(15) or "P", False,
            line_break=delimiters.terminator + "\n" in interchange,
        ),
        controls=controls,
        created_at=created_at,
    )


def _errors_by_set(
    sets: Sequence[Segment], errors: Sequence[SegmentError]
) -> dict[str, list[SegmentError]]:
    by_set: dict[str, list[SegmentError]] = {st.get(2): [] for st in sets}
    for error in errors:
        if error.st_control is None:
            if len(sets) != 1:
                raise ValueError(f"{error.segment} error: the interchange holds {len(sets)} "
                                 "transaction sets; name one with st_control")
            key = sets[0].get(2)
        else:
            key = next((k for k in by_set if k.isdigit() and int(k) == error.st_control), None)
            if key is None:
                raise ValueError(f"{error.segment} error: no transaction set with ST02 "
                                 f"{error.st_control} in the interchange")
        by_set[key].append(error)
    return by_set
