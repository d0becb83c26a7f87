"""The landing check's two readers (crosschannel.stages.ingest.landing): the columnar check passes a file only when
the row-by-row check does, with the same op counts and transfer times; every other file is named by the row check."""

from __future__ import annotations

import datetime as dt

import pytest

from crosschannel.core import source
from crosschannel.core.dms import DmsLandingError
from crosschannel.stages.ingest import landing

HEADER = "Op,dms_commit_ts,store_id,name,city,region,opened_date,updated_at\n"
GOOD = ("I,2026-11-01 09:30:00.123456,1,One,Salem,north,2020-01-02,2026-11-01 09:30:00.123456\n"
        "U,2026-11-01 10:00:00.000000,1,\"Uno, the big one\",Salem,north,2020-01-02,2026-11-01 10:00:00.000000\n"
        "D,2026-11-01 23:30:00.000000,2,\"Two\nlines\",Salem,north,2020-01-02,2026-10-31 08:00:00.000000\n"
        "I,2026-10-31 23:59:59.999999,3,Three,Salem,north,2020-01-02,2026-10-31 23:59:59.999999\n")
VARIANTS = {
    "good": GOOD,
    "header only": "",
    "an op that is not I, U or D": GOOD.replace("U,2026", "X,2026"),
    "a time without its fraction": GOOD.replace("10:00:00.000000,1", "10:00:00,1"),
    "a time with 3 digits of fraction": GOOD.replace("10:00:00.000000,1", "10:00:00.000,1"),
    "a day that does not exist": GOOD.replace("2026-11-01 09:30:00.123456,1", "2026-02-30 09:30:00.123456,1"),
    "a commit on another day": GOOD.replace("2026-11-01 10:00:00.000000,1", "2026-11-05 10:00:00.000000,1"),
    "an empty key": GOOD.replace(",1,One,", ",,One,"),
    "a short row": GOOD + "I,2026-11-01 11:00:00.000000,4,Four\n",
    "a blank line": GOOD.replace("\nU,", "\n\nU,"),
    "an unclosed quote": GOOD + "I,2026-11-01 11:00:00.000000,5,\"Five,Salem,north,2020-01-02,x\n",
    "a value longer than the csv module reads": GOOD.replace(",One,", "," + "x" * 131_073 + ","),
    "year zero": GOOD.replace("2026-11-01 09:30:00.123456,1", "0000-01-01 09:30:00.123456,1"),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("full_load", [False, True])
def test_the_columnar_check_passes_only_what_the_row_check_passes_with_the_same_counts(tmp_path, local_env, variant,
                                                                                         full_load):
    from airflow.sdk import ObjectStoragePath

    body = VARIANTS[variant]
    if full_load:
        body = body.replace("\nU,", "\nI,").replace("\nD,", "\nI,")
    path = tmp_path / "file.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    kwargs = {"full_load": full_load, "days": () if full_load else (dt.date(2026, 10, 31), dt.date(2026, 11, 1)),
              "count_day": None if full_load else dt.date(2026, 11, 1),
              "since": None if full_load else dt.datetime(2026, 11, 1, 9, 45)}
    tbl, file = source.table("stores"), ObjectStoragePath(f"file://{path}")

    columnar = landing._check_columns(file, tbl, **kwargs)
    try:
        rows = landing._check_rows(file, tbl, **kwargs)
    except DmsLandingError:
        rows = None

    assert columnar is None or columnar == rows, variant
    if variant in ("good", "header only"):
        assert columnar is not None and columnar == rows
        assert landing.check_file(file, tbl, **kwargs) == rows
    if not full_load and variant == "good":
        assert columnar[0] == {"U": 1, "D": 1}  # of 11-01, at or after 09:45
    if rows is None:
        with pytest.raises(DmsLandingError, match=r"file\.csv"):
            landing.check_file(file, tbl, **kwargs)


def test_a_file_of_many_blocks_is_checked_whole(tmp_path, local_env):
    """A file larger than Arrow's read block: every block is checked and counted."""
    from airflow.sdk import ObjectStoragePath

    lines = [f"{'IUD'[i % 3]},2026-11-01 {i % 24:02d}:00:00.000000,{i + 1},\"Store {i},\nbig\",Salem,north,"
             f"2020-01-02,2026-11-01 00:00:00.000000\n" for i in range(40_000)]
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    kwargs = {"full_load": False, "days": (dt.date(2026, 11, 1),), "count_day": dt.date(2026, 11, 1), "since": None}
    file, tbl = ObjectStoragePath(f"file://{path}"), source.table("stores")

    assert path.stat().st_size > 3 << 20
    assert landing._check_columns(file, tbl, **kwargs) == landing._check_rows(file, tbl, **kwargs) == (
        {"I": 13_334, "U": 13_333, "D": 13_333}, set())
    path.write_text(HEADER + "".join(lines[:-1]) + lines[-1].replace(",40000,", ",,"), encoding="utf-8")
    assert landing._check_columns(file, tbl, **kwargs) is None  # an empty key in the last block
