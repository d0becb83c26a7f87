"""DMS's real CSV dialect (RFC 4180, as the S3 target endpoint writes it) read the same way by both targets' readers:
the local one (pyarrow, crosschannel.core.sqljobs) and the Glue script (include/glue/run_sql.py) under pyspark 3.5.
Issue 13: Glue's Spark read with `header` only split a quoted line break into a bogus row (Op='lines"', a NULL
key that was then merged) and misread doubled quotes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from crosschannel.core import dms, sqljobs
from tests.conftest import BUNDLE, glue_script, store_row

HEADER = ["Op", "dms_commit_ts", "store_id", "name", "city"]
ROWS = [
    ["I", "2026-11-01 09:30:00.000000", "1", 'He said "hi", ok', "Salem"],
    ["U", "2026-11-01 10:00:00.000000", "2", "two\nlines", ""],
    ["I", "2026-11-01 11:00:00.000000", "3", "comma, inside", "O'Neil \"Town\""],
    ["D", "2026-11-01 12:00:00.000000", "4", "", "Porto"],
]


def _dms_file(tmp_path) -> str:
    """A CDC file as DMS writes it: a header, every field quoted only when needed, quotes doubled, \\n rows."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, *ROWS])
    path = tmp_path / "20261101-093000123.csv"
    path.write_text(buffer.getvalue())
    assert '"He said ""hi"", ok"' in buffer.getvalue() and '"two\nlines"' in buffer.getvalue()
    return path.as_uri()


def _expected() -> list[dict]:
    return [dict(zip(HEADER, [None if v == "" else v for v in row], strict=True)) for row in ROWS]


def test_the_local_reader_reads_dms_quoting_and_line_breaks(tmp_path):
    table = sqljobs.read_dms_csv([_dms_file(tmp_path)])
    assert table.select(HEADER).to_pylist() == _expected()
    assert table.column("_row_seq").to_pylist() == [0, 1, 2, 3]


def test_the_glue_script_reads_dms_quoting_and_line_breaks(spark, tmp_path):
    job = glue_script()

    frame = job.read_input(spark, {"format": "dms_csv", "paths": [_dms_file(tmp_path)]})

    rows = [row.asDict() for row in frame.orderBy("_row_seq").collect()]
    assert [{k: r[k] for k in HEADER} for r in rows] == _expected()


def test_endpoint_settings_that_the_readers_cannot_read_are_refused(tmp_path, local_env, monkeypatch):
    """DMS's default CsvNullValue is the text NULL: every null would land as the string 'NULL'. The shipped
    settings set it to the empty field; settings without it fail naming the file and the key."""
    from crosschannel.core.config import get_config

    shipped = json.loads((BUNDLE / "include/dms/s3-target-settings.json").read_text())
    assert shipped["CsvNullValue"] == ""
    broken = tmp_path / "settings.json"
    broken.write_text(json.dumps({k: v for k, v in shipped.items() if k != "CsvNullValue"}))
    monkeypatch.setenv("CROSSCHANNEL__DMS__SETTINGS_FILE", str(broken))
    get_config.cache_clear()
    dms.settings.cache_clear()
    try:
        with pytest.raises(dms.DmsLandingError, match=r"settings.json: .*'CsvNullValue': '\(not set\)'.* must be "
                                                      r"\{'CsvNullValue': ''\}"):
            dms.settings()
    finally:
        dms.settings.cache_clear()
        get_config.cache_clear()


@pytest.fixture
def one_store_landed(local_env, tmp_path):
    """A source with store 9, full-loaded and landed on 2026-11-01 by the local DMS stand-in."""
    import datetime as dt

    import sqlalchemy as sa

    from crosschannel.core import source
    from crosschannel.local import dms_task
    from crosschannel.stages.ingest import landing

    engine = source.connect(f"sqlite:///{tmp_path / 'src.db'}", create=True)
    source.create_schema(engine)
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 1))
        conn.execute(sa.insert(source.stores), [store_row(9, "Nine", dt.datetime(2026, 10, 30))])
    dms_task.LocalReplicationTask(engine).start("start-replication", dt.date(2026, 11, 1))
    landing.check_landing(dt.date(2026, 11, 1), "start-replication")
    yield
    engine.dispose()


def test_cdc_files_named_with_milliseconds_land_in_time_order_and_a_stranger_is_refused(one_store_landed):
    """Issue 13: DMS names CDC files with milliseconds (20230905-151244585.csv, 9 digits); the landing check
    matched 10 digits only and silently dropped the others, so the trusted state never moved past the full
    load. Both precisions land, in time order; a file with another name fails naming it."""
    import datetime as dt

    from crosschannel.core import paths
    from crosschannel.stages.ingest import landing

    day = dt.date(2026, 11, 2)
    folder = paths.dms_landing() / "stores" / "2026/11/02"
    folder.mkdir(parents=True)
    header = "Op,dms_commit_ts,store_id,name,city,region,opened_date,updated_at\n"
    row = "{op},2026-11-02 {t}.000000,1,{name},Salem,north,2020-01-02,2026-11-02 {t}.000000\n"
    (folder / "20261102-101500123.csv").write_text(header + row.format(op="I", t="10:15:00", name="One"))
    (folder / "20261102-0930000000.csv").write_text(header + row.format(op="U", t="09:30:00", name="Early"))
    (folder / "20261102-101500124.csv").write_text(header + row.format(op="U", t="10:15:00", name="Last"))

    manifest = landing.check_landing(day, "resume-processing")

    assert manifest["tables"]["stores"]["cdc_files"] == [
        "2026/11/02/20261102-0930000000.csv", "2026/11/02/20261102-101500123.csv", "2026/11/02/20261102-101500124.csv"]
    from crosschannel.stages.trusted import merge

    assert dict(zip(*merge.current_state("stores", day).select(["store_id", "name"]).to_pydict().values(),
                    strict=True)) == {1: "Last", 9: "Nine"}
    (folder / "20261102-1015.csv").write_text(header)
    with pytest.raises(dms.DmsLandingError, match=r"\['20261102-1015.csv'\] are not DMS CDC file names"):
        landing.check_landing(day, "resume-processing")


def test_the_days_last_changes_flushed_after_midnight_land_with_their_day(one_store_landed):
    """Issue 13: DMS names CDC folders by write time; with CdcMaxBatchInterval 3600 the last hour of day D is
    flushed after midnight into D+1's folder, often in one file with D+1's first changes. The landing check trusted
    the folder (D+1's check failed on D's rows, D's state missed them). Now D takes the D+1 files that hold its
    changes and its merge stops at its end; D+1 keeps its own changes."""
    import datetime as dt

    from crosschannel.core import paths
    from crosschannel.stages.ingest import landing
    from crosschannel.stages.trusted import merge

    header = "Op,dms_commit_ts,store_id,name,city,region,opened_date,updated_at\n"

    def row(op: str, when: str, name: str) -> str:
        return f"{op},{when}.000000,9,{name},Salem,north,2020-01-02,{when}.000000\n"

    day2, day3 = paths.dms_landing() / "stores" / "2026/11/02", paths.dms_landing() / "stores" / "2026/11/03"
    day2.mkdir(parents=True)
    day3.mkdir(parents=True)
    (day2 / "20261102-1000000000.csv").write_text(header + row("U", "2026-11-02 10:00:00", "Morning"))
    # written at 00:40 on 11-03: the last hour of 11-02 and the first minutes of 11-03
    (day3 / "20261103-004000000.csv").write_text(header + row("U", "2026-11-02 23:30:00", "Late")
                                                 + row("U", "2026-11-03 00:20:00", "Next day"))
    (day3 / "20261103-101500000.csv").write_text(header + row("U", "2026-11-03 10:15:00", "Later"))

    second = landing.check_landing(dt.date(2026, 11, 2), "resume-processing")
    third = landing.check_landing(dt.date(2026, 11, 3), "resume-processing")

    assert second["tables"]["stores"]["cdc_files"] == ["2026/11/02/20261102-1000000000.csv",
                                                       "2026/11/03/20261103-004000000.csv"]
    assert second["tables"]["stores"]["cdc_ops"] == {"I": 0, "U": 2, "D": 0}  # its own two changes
    assert third["tables"]["stores"]["cdc_ops"] == {"I": 0, "U": 2, "D": 0}
    assert merge.current_state("stores", dt.date(2026, 11, 2)).to_pydict()["name"] == ["Late"]
    assert merge.current_state("stores", dt.date(2026, 11, 3)).to_pydict()["name"] == ["Later"]
