"""Turn a suite's SQL into the pandas frame Great Expectations checks.

Great Expectations' SQL datasource cannot evaluate metrics on DuckDB, so each suite's query
runs in DuckDB and the result is checked as a pandas frame. Rows are fetched as Python
objects rather than through `DataFrame` conversion, which would turn decimal amounts into
floats: amounts stay `Decimal` and dates stay `date` from the warehouse to the reason text.
pandas is imported where it is used, so reading holds does not pay for loading it.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import TYPE_CHECKING

from q2c.money import MINOR_UNITS

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

CURRENCY_RELATION = "iso_4217_currencies"
ROW_COLUMN = "_frame_row"
_INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
}


def currency_table() -> pd.DataFrame:
    """ISO 4217 codes with their minor units and the factor that turns an amount into them."""
    import pandas as pd

    codes = sorted(MINOR_UNITS)
    return pd.DataFrame(
        {
            "currency": codes,
            "minor_units": [MINOR_UNITS[code] for code in codes],
            "minor_unit_factor": [10 ** MINOR_UNITS[code] for code in codes],
        }
    )


def query_frame(conn: duckdb.DuckDBPyConnection, query: str) -> pd.DataFrame:
    """Run `query` with the currency table in scope; one frame row per result row.

    Integer columns become nullable `Int64` so a missing value does not turn the column into
    floats. A `_frame_row` column numbers the rows, so a failing row can be found again even
    when its invoice id is missing or repeated.
    """
    import pandas as pd

    conn.register(CURRENCY_RELATION, currency_table())
    try:
        relation = conn.sql(query)
        columns, types = relation.columns, [str(kind) for kind in relation.types]
        rows = relation.fetchall()
    finally:
        conn.unregister(CURRENCY_RELATION)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for column, kind in zip(columns, types, strict=True):
        if kind in _INTEGER_TYPES:
            frame[column] = frame[column].astype("Int64")
        if kind == "DATE":
            frame[column] = frame[column].map(_python_date)
    frame[ROW_COLUMN] = range(len(frame))
    return frame


def _python_date(value: object) -> dt.date | None:
    """DuckDB hands dates beyond year 9999 to Python as text; they are no usable date."""
    return value if isinstance(value, dt.date) else None


def plain(value: object) -> object:
    """A frame value as JSON-ready Python: None for missing, text for Decimal and dates."""
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item"):
        return plain(value.item())
    return value


def plain_row(frame: pd.DataFrame, position: int) -> dict[str, object]:
    """Row `position` of `frame` as a plain dict, without the row-number column."""
    row = frame.iloc[position]
    return {column: plain(row[column]) for column in frame.columns if column != ROW_COLUMN}
