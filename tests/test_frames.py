"""A query's rows through Arrow (llmlab.frames.frame) are the frame DuckDB's own .df() gives: dtypes and values."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from llmlab.frames import frame

EVERY_STORED_TYPE = """
    SELECT NULL::VARCHAR AS all_null_text, 'a' AS text, CASE WHEN range % 2 = 0 THEN 'x' END AS half_null_text,
           range::INTEGER AS int, NULL::INTEGER AS all_null_int, CASE WHEN range % 2 = 0 THEN 7::SMALLINT END AS
           half_null_small, range::BIGINT AS big, CASE WHEN range % 2 = 0 THEN range::BIGINT END AS half_null_big,
           true AS flag, NULL::BOOLEAN AS all_null_flag, CASE WHEN range % 2 = 0 THEN false END AS half_null_flag,
           TIMESTAMP '2026-01-02 03:04:05.123456' AS ts, NULL::TIMESTAMP AS null_ts,
           TIMESTAMPTZ '2026-01-02 03:04:05+00' AS tstz, 1.5::DOUBLE AS d, NULL::DOUBLE AS null_d, NULL AS nothing
    FROM range(4) WHERE range < ?"""


@pytest.mark.parametrize("query", [
    EVERY_STORED_TYPE,
    "SELECT 1.5 AS dec, range FROM range(3) WHERE range < ?",  # DECIMAL: DuckDB's own conversion
    "SELECT 'x'::BLOB AS b, uuid() IS NOT NULL AS u FROM range(3) WHERE range < ?",
    "SELECT 1 AS a, 2 AS a FROM range(3) WHERE range < ?",  # one name twice
])
@pytest.mark.parametrize("n_rows", [4, 1, 0])
def test_a_frame_through_arrow_has_duckdbs_own_dtypes_and_missing_values(query: str, n_rows: int) -> None:
    con = duckdb.connect()
    expected = con.execute(query, [n_rows]).df()
    got = frame(con, query, [n_rows])
    pd.testing.assert_frame_equal(got, expected)
    # None stays None and NaN stays NaN (assert_frame_equal treats them alike)
    assert repr(got.to_dict("records")) == repr(expected.to_dict("records"))


def test_a_frame_raises_duckdbs_error_for_a_bad_query() -> None:
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        frame(duckdb.connect(), "SELECT * FROM no_such_table")
