"""Faults in the source DB and the way to it: values its column types cannot hold, a missing database, a source
that stops answering mid-extract. Each fails with an error naming what to fix, and commits nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.local import dms_task
from crosschannel.stages.ingest import landing
from tests.conftest import store_row

DAY = dt.date(2026, 11, 1)


@pytest.fixture
def engine(tmp_path, local_env):
    eng = source.connect(f"sqlite:///{tmp_path / 'src.db'}", create=True)
    source.create_schema(eng)
    with eng.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 1, 0, 0))
        conn.execute(sa.insert(source.stores), [store_row(1, "One", dt.datetime(2026, 10, 30))])
    yield eng
    eng.dispose()


def _bad_key(conn, at: str = "2026-10-30 00:00:00.000000") -> None:
    """SQLite keeps an empty string in an INTEGER key column (a hand-edited source, an import by other tools)."""
    conn.exec_driver_sql("INSERT INTO inventory (store_id, product_id, on_hand, updated_at) "
                         f"VALUES (1, '', 3, '{at}')")


def test_an_empty_source_key_in_the_full_load_is_named_and_repaired_by_deleting_the_row(engine):
    with engine.begin() as conn:
        _bad_key(conn)
    task = dms_task.LocalReplicationTask(engine)
    with pytest.raises(dms_task.SourceValueError, match=r"source table inventory, column product_id: '' is not a "
                       r"valid INTEGER .* key \{'store_id': 1, 'product_id': ''\} \(full load snapshot\)\. Repair"):
        task.start("start-replication", DAY)
    assert not list(paths.dms_landing().rglob("LOAD*.csv")) if paths.dms_landing().exists() else True

    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM inventory WHERE product_id = ''")
    task.start("start-replication", DAY)
    assert landing.check_landing(DAY, "start-replication")["tables"]["stores"]["full_load_rows"] == 1


def test_an_empty_source_key_in_the_change_log_names_the_change_and_its_repair(engine):
    source.enable_cdc(engine)
    task = dms_task.LocalReplicationTask(engine)
    task.start("start-replication", DAY)
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 2, 8, 0))
        _bad_key(conn, "2026-11-02 08:00:00.000000")
    with pytest.raises(dms_task.SourceValueError, match=r"change \d+ of cdc_log\)\. Repair.*delete them from cdc_log"):
        task.start("resume-processing", dt.date(2026, 11, 2))
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM inventory WHERE product_id = ''")
        conn.execute(sa.delete(source.cdc_log).where(source.cdc_log.c.row_data.contains('"product_id":""')))
    task.start("resume-processing", dt.date(2026, 11, 2))
    manifest = landing.check_landing(dt.date(2026, 11, 2), "resume-processing")
    assert manifest["tables"]["inventory"]["rows"] == 0


def test_a_missing_sqlite_source_is_an_error_not_a_new_empty_database(tmp_path, local_env):
    missing = tmp_path / "gone.db"
    with pytest.raises(Exception, match=r"gone\.db"):
        dms_task.LocalReplicationTask(source.connect(f"sqlite:///{missing}"))
    assert not missing.exists()


def test_a_source_that_fails_mid_extract_commits_nothing(engine, monkeypatch):
    """The DB connection drops while the full load streams a table: no LOAD file, no manifest, and a re-run
    after the fault converges to the fault-free landing."""
    task = dms_task.LocalReplicationTask(engine)
    real = task._write_load_files

    def connection_lost(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(task, "_write_load_files", connection_lost)
    with pytest.raises(sa.exc.OperationalError):
        task.start("start-replication", DAY)
    assert not list(paths.dms_landing().rglob("LOAD*.csv")) if paths.dms_landing().exists() else True
    assert not storage.is_committed(paths.dms_manifest(DAY))
    monkeypatch.setattr(task, "_write_load_files", real)
    task.start("start-replication", DAY)
    assert landing.check_landing(DAY, "start-replication")["tables"]["stores"]["full_load_rows"] == 1
