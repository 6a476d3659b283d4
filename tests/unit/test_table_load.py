"""Reading CSV, TSV, XLSX and Parquet files into clean, typed DataFrames (pilotfish.tables.load)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pilotfish.errors import TableError
from pilotfish.tables.load import (
    TABLE_SUFFIXES,
    LoadedTable,
    SkippedSheet,
    clean_headers,
    clean_name,
    infer_types,
    read_tables,
)


def _one(path: Path) -> LoadedTable:
    tables, skipped = read_tables(path)
    assert len(tables) == 1 and skipped == []
    return tables[0]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_suffixes() -> None:
    assert TABLE_SUFFIXES == (".csv", ".tsv", ".xlsx", ".parquet")


def test_csv_with_semicolons(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "cities.csv", "City;Population;Note\nOslo;709,037;a,b\nBergen;291,940;c\n"))
    assert list(table.frame.columns) == ["city", "population", "note"]
    assert table.frame["population"].dtype == "Int64"
    assert table.frame["population"].tolist() == [709037, 291940]
    assert table.frame["note"].tolist() == ["a,b", "c"]
    assert table.source == str(tmp_path / "cities.csv") and table.sheet is None


def test_tsv(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "t.tsv", "a\tb\n1\tx;y\n2\tz\n"))
    assert list(table.frame.columns) == ["a", "b"]
    assert table.frame["a"].tolist() == [1, 2]
    assert table.frame["b"].tolist() == ["x;y", "z"]


def test_leading_zero_ids_stay_text(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "z.csv", "zip,id,ratio\n007,0012,0.5\n12345,12,0\n"))
    assert table.frame["zip"].tolist() == ["007", "12345"]
    assert table.frame["id"].tolist() == ["0012", "12"]
    assert table.frame["ratio"].dtype == "Float64"  # "0.5" and "0" are numbers, not codes


def test_thousands_and_currency_become_numbers(tmp_path: Path) -> None:
    text = 'item,price,total,rate\na,"$1,234.50",+1,5%\nb,$3,"-2,000",12.5%\nc,,7,0%\n'
    table = _one(_write(tmp_path, "p.csv", text))
    frame = table.frame
    assert frame["price"].dtype == "Float64"
    assert frame["price"].tolist()[:2] == [1234.5, 3.0] and pd.isna(frame["price"][2])
    assert frame["total"].dtype == "Int64" and frame["total"].tolist() == [1, -2000, 7]
    assert frame["rate"].tolist() == [5.0, 12.5, 0.0]
    assert "price: number (removed '$' and ',')" in table.notes
    assert "total: integer (removed ',')" in table.notes
    assert any(note.startswith("rate: values are percents") for note in table.notes)


def test_euro_suffix_and_sign_before_symbol(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "e.csv", "cost,loss\n12 €,-$5\n3.5 €,$-6\n"))
    assert table.frame["cost"].tolist() == [12.0, 3.5]
    assert table.frame["loss"].tolist() == [-5, -6]


def test_iso_dates_become_datetimes(tmp_path: Path) -> None:
    text = "day,when,month\n2023-01-05,05/01/2023,2023-01\n2023-12-31,12/31/2023,2024-02\n"
    table = _one(_write(tmp_path, "d.csv", text))
    frame = table.frame
    for column in ("day", "when", "month"):
        assert pd.api.types.is_datetime64_any_dtype(frame[column]), column
    assert frame["day"][0] == pd.Timestamp("2023-01-05")
    assert frame["when"][0] == pd.Timestamp("2023-05-01")  # month first, the one order that fits every value
    assert frame["month"][1] == pd.Timestamp("2024-02-01")
    assert "day: date (format %Y-%m-%d)" in table.notes


def test_mixed_and_wtq_style_columns_stay_text(tmp_path: Path) -> None:
    text = "rank,score,flag,when,cur\n1st,12 (3),yes,2023-01-05,$1\n2nd,7,no,n/a,€2\n"
    frame = _one(_write(tmp_path, "m.csv", text)).frame
    assert frame["rank"].tolist() == ["1st", "2nd"]
    assert frame["score"].tolist() == ["12 (3)", "7"]
    assert frame["flag"].tolist() == ["yes", "no"]  # booleans stay text
    assert frame["when"].tolist() == ["2023-01-05", "n/a"]  # 100% or nothing
    assert frame["cur"].tolist() == ["$1", "€2"]  # two currencies are not one quantity
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns)


def test_ragged_short_rows_are_padded(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "r.csv", "a,b,c\n1,2,3\n4\n5,6\n"))
    assert table.frame["a"].tolist() == [1, 4, 5]
    assert table.frame["c"].isna().tolist() == [False, True, True]
    assert "padded 2 short row(s) with empty values" in table.notes


def test_long_row_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "l.csv", "a,b\n1,2\n\n3,4,5\n")
    with pytest.raises(TableError, match=r"line 4 has 3 fields but the header has 2.*quote the field"):
        read_tables(path)


def test_trailing_empty_fields_are_dropped_not_an_error(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "t.csv", "a,b\n1,2,\n3,4\n"))
    assert list(table.frame.columns) == ["a", "b"] and len(table.frame) == 2


@pytest.mark.parametrize("text", ["", "\n\n", "a,b,c\n", "a,b\n,\n ,  \n", ",,\n,,\n"])
def test_files_without_rows_raise(tmp_path: Path, text: str) -> None:
    with pytest.raises(TableError, match="no rows|no data rows"):
        read_tables(_write(tmp_path, "empty.csv", text))


def test_empty_rows_and_columns_are_dropped(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "g.csv", "a,,b,c\n1,,x,\n,,,\n2,,y,\n"))
    assert list(table.frame.columns) == ["a", "b", "c"]  # "c" has a header: kept, all missing
    assert len(table.frame) == 2
    assert "dropped 1 empty row(s)" in table.notes
    assert "dropped 1 empty column(s) (no header, no values)" in table.notes


def test_blank_and_duplicate_headers(tmp_path: Path) -> None:
    table = _one(_write(tmp_path, "h.csv", "Total,,Total,Sales ($),2023 Revenue\n1,2,3,4,5\n"))
    assert list(table.frame.columns) == ["total", "column_2", "total_2", "sales", "c_2023_revenue"]
    assert "column 2 has no header -> column_2" in table.notes
    assert "'Total' (column 3) repeats a header -> total_2" in table.notes
    assert "'2023 Revenue' -> c_2023_revenue" in table.notes


def test_clean_headers_and_names() -> None:
    names, notes = clean_headers(["Region Name", "", "Growth %", "userID", "Café", "名前", None, "total", "total"])
    assert names == ["region_name", "column_2", "growth_pct", "user_id", "cafe", "column_6", "column_7", "total",
                     "total_2"]
    assert len(notes) == 8  # every header except the first "total"
    assert clean_name("Sales 2023", fallback="table") == "sales_2023"
    assert clean_name("2023 sales", fallback="table") == "t_2023_sales"
    assert clean_name("  ", fallback="table") == "table"
    assert len(clean_name("x" * 100, fallback="table")) == 60
    with pytest.raises(ValueError, match="fallback"):
        clean_name("a", fallback="1bad")


def test_cp1252_file(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes("name,price\nCafé,€5\nNaïve,€6\n".encode("cp1252"))
    table = _one(path)
    assert table.frame["name"].tolist() == ["Café", "Naïve"]
    assert table.frame["price"].tolist() == [5, 6]
    assert any("not UTF-8" in note and "cp1252" in note for note in table.notes)


def test_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes("\ufeffid,x\n1,2\n".encode())
    assert list(_one(path).frame.columns) == ["id", "x"]


def test_names_from_stems(tmp_path: Path) -> None:
    assert _one(_write(tmp_path, "Sales 2023.csv", "a\n1\n")).name == "sales_2023"
    assert _one(_write(tmp_path, "2023.csv", "a\n1\n")).name == "t_2023"


def _workbook(path: Path, *, data_sheets: int, chart: bool = True, empty: bool = False) -> Path:
    import openpyxl
    from openpyxl.chart import BarChart, Reference

    workbook = openpyxl.Workbook()
    first = workbook.active
    workbook.remove(first)
    for i in range(data_sheets):
        sheet = workbook.create_sheet(f"Q{i + 1} Data")
        sheet.append([None, None])
        sheet.append(["Region", "Sales", "Day"])
        sheet.merge_cells("B2:C2") if i == 1 else None
        sheet.append(["North", 1200, pd.Timestamp("2023-01-05").to_pydatetime()])
        sheet.append(["South", 950.5, pd.Timestamp("2023-02-05").to_pydatetime()])
        sheet.append(["East", "#N/A", None])
    if empty:
        workbook.create_sheet("Blank")
    if chart:
        source = workbook.worksheets[0] if workbook.worksheets else workbook.create_sheet("Numbers")
        chart_sheet = workbook.create_chartsheet("Chart")
        bar = BarChart()
        bar.add_data(Reference(source, min_col=2, min_row=2, max_row=4))
        chart_sheet.add_chart(bar)
        if not data_sheets:
            workbook.remove(source)
    workbook.save(path)
    return path


def test_xlsx_two_sheets_and_a_chart(tmp_path: Path) -> None:
    tables, skipped = read_tables(_workbook(tmp_path / "Report.xlsx", data_sheets=2, empty=True))
    assert [t.name for t in tables] == ["report_q1_data", "report_q2_data"]
    assert [t.sheet for t in tables] == ["Q1 Data", "Q2 Data"]
    source = str(tmp_path / "Report.xlsx")
    assert skipped == [SkippedSheet(source, "Blank", "empty sheet"), SkippedSheet(source, "Chart", "chart sheet")]
    first = tables[0].frame
    assert list(first.columns) == ["region", "sales", "day"]
    assert first["sales"].dtype == "Float64" and first["sales"].tolist()[:2] == [1200.0, 950.5]
    assert pd.isna(first["sales"][2])  # "#N/A" became empty
    assert pd.api.types.is_datetime64_any_dtype(first["day"])
    assert list(tables[1].frame.columns) == ["region", "sales", "column_3"]  # merged header cell
    assert any("header is row 2" in note for note in tables[0].notes)


def test_xlsx_single_table_sheet_uses_the_stem(tmp_path: Path) -> None:
    tables, skipped = read_tables(_workbook(tmp_path / "Only One.xlsx", data_sheets=1))
    assert [t.name for t in tables] == ["only_one"]
    assert [s.reason for s in skipped] == ["chart sheet"]


def test_xlsx_with_only_a_chart_raises(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "c.xlsx", data_sheets=0)
    with pytest.raises(TableError, match=r"no table in any sheet \('Chart': chart sheet\)"):
        read_tables(path)


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "Order ID": ["007", "008"],
        "Amount": [1.5, 2.0],
        "When": pd.to_datetime(["2023-01-05", "2023-01-06"]),
    })
    path = tmp_path / "orders.parquet"
    frame.to_parquet(path)
    table = _one(path)
    assert table.name == "orders"
    assert list(table.frame.columns) == ["order_id", "amount", "when"]
    assert table.frame["order_id"].tolist() == ["007", "008"]
    assert table.frame["amount"].dtype == "float64"
    assert pd.api.types.is_datetime64_any_dtype(table.frame["when"])


def test_infer_types_leaves_typed_columns_alone() -> None:
    frame = pd.DataFrame({"n": [1, 2], "s": ["1,000", ""], "o": pd.Series([3, 4.5], dtype=object)})
    typed, notes = infer_types(frame)
    assert typed["n"].dtype == "int64"
    assert typed["s"].dtype == "Int64" and typed["s"][0] == 1000 and pd.isna(typed["s"][1])
    assert typed["o"].dtype == "Float64"
    assert notes == ["s: integer (removed ',')"]
    assert frame["s"].tolist() == ["1,000", ""]  # the input is not changed


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="supported: .csv"):
        read_tables(tmp_path / "a.json")
    with pytest.raises(TableError, match="no such file"):
        read_tables(tmp_path / "missing.csv")
    (tmp_path / "bad.xlsx").write_text("not a zip")
    with pytest.raises(TableError, match="not a readable .xlsx"):
        read_tables(tmp_path / "bad.xlsx")


def test_import_is_light() -> None:
    code = ("import pilotfish.tables.load, sys; "
            "print(sorted(m for m in ('pandas', 'openpyxl', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
