"""A DuckDB query's rows as a pandas DataFrame, through Arrow, with the dtypes DuckDB's own ``.df()`` gives.

Why: with pandas 3 (whose strings are Arrow-backed), DuckDB's ``.df()`` builds a Python ``str`` per value and
pandas then packs them back into Arrow, so the frame of a 10^5-call run costs about 0.12 s for 34 columns;
``to_arrow_table().to_pandas()`` costs about 0.04 s for the same rows (a 10^6-call store of ``benchmarks.store_scale.fill``, stop 27). Arrow's
conversion differs from DuckDB's in four places, mended here so that readers see the frame they always saw:

- an integer column with NULLs: pandas' nullable ``Int8`` .. ``Int64`` (Arrow gives ``float64``);
- a boolean column with NULLs: pandas' nullable ``boolean`` (Arrow gives ``object``);
- a VARCHAR column that is all NULL, or of no rows: ``object`` holding ``None`` (Arrow gives ``str`` of NaN);
- any other type Arrow converts differently (DECIMAL, BLOB, UUID, ...), or two columns of one name: the whole
  table goes through DuckDB's own conversion instead (``from_arrow(table).df()``), so nothing changes type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["frame"]

_NULLABLE_INTS = {8: "Int8", 16: "Int16", 32: "Int32", 64: "Int64"}


def _plain(t: Any) -> bool:
    """True when Arrow converts a column of type ``t`` as DuckDB does (up to the NULL cases mended below)."""
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_signed_integer(t)
                or pa.types.is_boolean(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)
                or pa.types.is_null(t))


def frame(con: Any, query: str, params: Sequence[Any] | None = None) -> Any:
    """The rows of ``query`` (one statement that returns rows) on DuckDB connection ``con`` as a DataFrame.

    Returns a pandas DataFrame with the columns of the query, dtypes as DuckDB's ``.df()`` gives them.
    Raises what DuckDB raises for the query (``duckdb.Error`` and its subclasses).
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    table = con.sql(query, params=list(params or [])).to_arrow_table()
    names = table.schema.names
    if len(set(names)) < len(names) or not all(_plain(f.type) for f in table.schema):
        return con.from_arrow(table).df()
    out = table.to_pandas()
    for f in table.schema:
        col = table.column(f.name)
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_null(f.type):
            if col.null_count == len(col):
                out[f.name] = pd.Series(np.empty(len(col), dtype=object), index=out.index)  # all None
        elif col.null_count and pa.types.is_signed_integer(f.type):
            out[f.name] = col.to_pandas(types_mapper={f.type: pd.api.types.pandas_dtype(
                _NULLABLE_INTS[f.type.bit_width])}.get)
        elif col.null_count and pa.types.is_boolean(f.type):
            out[f.name] = col.to_pandas(types_mapper={f.type: pd.BooleanDtype()}.get)
    return out
