"""Raw tables of the sage_intacct source (filled in by its connector module)."""

from q2c.sources.raw_table import RawTable

TABLES: tuple[RawTable, ...] = ()
