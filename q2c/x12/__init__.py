"""ANSI X12 for US trading partners: 810 invoices out, 997 acknowledgements back.

- `profiles`: trading-partner profiles (version, GS08 suffix, ids, delimiters, required
  segments) read from `partners.yaml`;
- `control`: ISA13/GS06/ST02 control numbers per partner in the ops store;
- `writer`: the 810 of an EN 16931 invoice or credit note;
- `validate`: q2c's own check of any interchange, with findings naming segment and element;
- `ack`: reading and writing 997 functional acknowledgements.

Nothing here imports Dagster; the delivery channel and the assets build on these modules.
"""

from q2c.x12.ack import FunctionalAck, SegmentError, TransactionAck, parse_997, write_997
from q2c.x12.control import ControlNumbers, Controls, IssuedControl
from q2c.x12.profiles import PartnerProfileError, TradingPartner, load_partners
from q2c.x12.syntax import X12ParseError
from q2c.x12.validate import Finding, validate_x12
from q2c.x12.writer import X12Invalid, X12ValueError, write_810

__all__ = [
    "ControlNumbers",
    "Controls",
    "Finding",
    "FunctionalAck",
    "IssuedControl",
    "PartnerProfileError",
    "SegmentError",
    "TradingPartner",
    "TransactionAck",
    "X12Invalid",
    "X12ParseError",
    "X12ValueError",
    "load_partners",
    "parse_997",
    "validate_x12",
    "write_810",
    "write_997",
]
