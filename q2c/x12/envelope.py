"""The X12 envelope around one transaction set: ISA, GS, ST ... SE, GE, IEA.

Both the 810 writer and the 997 writer produce one interchange holding one functional
group holding one transaction set, so the counting rules live here once: SE01 counts the
segments from ST to SE inclusive, GE01 the transaction sets of the group, IEA01 the groups
of the interchange. ISA is fixed width: ids are padded with spaces to fifteen characters
and ISA13 is zero-padded to nine digits, so the segment is always 106 characters with its
terminator. ISA11 is "U" (the US standards identifier) before 5010 and the repetition
separator from 5010 on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from q2c.x12.control import Controls
from q2c.x12.syntax import ISA_LENGTH, Delimiters


@dataclass(frozen=True)
class Parties:
    """Who sends and who receives: ISA05..08 and GS02/03."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    gs_sender: str
    gs_receiver: str


@dataclass(frozen=True)
class EnvelopeOptions:
    """The interchange settings that are not parties or numbers."""

    isa_version: str  # ISA12, 00401 or 00501
    gs_version: str  # GS08, e.g. 004010VICS
    delimiters: Delimiters
    usage: str = "P"  # ISA15
    ack_requested: bool = False  # ISA14
    line_break: bool = True


def interchange(
    transaction_set: str,
    body: Sequence[Sequence[str]],
    *,
    functional_id: str,
    parties: Parties,
    options: EnvelopeOptions,
    controls: Controls,
    created_at: dt.datetime,
) -> str:
    """One interchange with one group and one transaction set of `body` segments (each a
    sequence of elements, segment id first, without ST and SE)."""
    st_control = f"{controls.st:04d}"
    segments: list[Sequence[str]] = [
        ("GS", functional_id, parties.gs_sender, parties.gs_receiver,
         created_at.strftime("%Y%m%d"), created_at.strftime("%H%M"), str(controls.gs), "X",
         options.gs_version),
        ("ST", transaction_set, st_control),
        *body,
    ]
    segment_count = len(body) + 2
    segments += [
        ("SE", str(segment_count), st_control),
        ("GE", "1", str(controls.gs)),
        ("IEA", "1", f"{controls.isa:09d}"),
    ]
    delimiters = options.delimiters
    newline = "\n" if options.line_break and delimiters.terminator != "\n" else ""
    isa = isa_segment(parties, options, controls.isa, created_at)
    lines = [isa + delimiters.terminator + newline]
    for elements in segments:
        lines.append(render(elements, delimiters.element) + delimiters.terminator + newline)
    return "".join(lines)


def isa_segment(
    parties: Parties, options: EnvelopeOptions, isa_control: int, created_at: dt.datetime
) -> str:
    """The ISA without its terminator: 105 characters."""
    delimiters = options.delimiters
    isa11 = "U" if options.isa_version < "00501" else (delimiters.repetition or "")
    elements = (
        "ISA", "00", " " * 10, "00", " " * 10,
        parties.sender_qualifier, parties.sender_id.ljust(15),
        parties.receiver_qualifier, parties.receiver_id.ljust(15),
        created_at.strftime("%y%m%d"), created_at.strftime("%H%M"),
        isa11, options.isa_version, f"{isa_control:09d}",
        "1" if options.ack_requested else "0", options.usage, delimiters.component,
    )
    text = delimiters.element.join(elements)
    if len(text) != ISA_LENGTH - 1:
        raise ValueError(f"the ISA came out {len(text) + 1} characters long, not {ISA_LENGTH}: "
                         f"check the interchange ids and qualifiers ({parties})")
    return text


def render(elements: Sequence[str], separator: str) -> str:
    """A segment with its trailing empty elements dropped, as X12 requires."""
    values = list(elements)
    while len(values) > 1 and values[-1] == "":
        values.pop()
    return separator.join(values)
