"""The source DB's change capture and the local DMS extract, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.local import dms_task
from crosschannel.stages.ingest import landing as dms_landing
from tests.conftest import store_row

T0 = dt.datetime(2026, 11, 1, 9, 30, 0, 123456)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = source.connect(f"sqlite:///{tmp_path / 'src.db'}", create=True)
    else:
        eng = request.getfixturevalue("pg_engine")
    source.create_schema(eng)
    with eng.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 1, 0, 0))
    yield eng
    eng.dispose()


def _changes(engine) -> None:
    """Day 1: two inserts, one update, one delete (commit times from updated_at and the clock)."""
    with engine.begin() as conn:
        conn.execute(sa.insert(source.stores), [store_row(1, "One", T0), store_row(2, "Two", T0)])
        conn.execute(sa.update(source.stores).where(source.stores.c.store_id == 1)
                     .values(name="Uno", updated_at=T0 + dt.timedelta(hours=2)))
        source.set_clock(conn, dt.datetime(2026, 11, 1, 23, 30))
        conn.execute(sa.delete(source.stores).where(source.stores.c.store_id == 2))


def test_triggers_capture_every_operation_with_row_images(engine):
    source.enable_cdc(engine)
    source.enable_cdc(engine)  # idempotent

    _changes(engine)

    with engine.connect() as conn:
        log = conn.execute(sa.select(source.cdc_log).order_by(source.cdc_log.c.seq)).all()
    assert [(r.table_name, r.op) for r in log] == [("stores", "I"), ("stores", "I"), ("stores", "U"), ("stores", "D")]
    assert [r.commit_ts for r in log] == [T0, T0, T0 + dt.timedelta(hours=2), dt.datetime(2026, 11, 1, 23, 30)]
    images = [json.loads(r.row_data) for r in log]
    assert images[2]["name"] == "Uno" and images[3]["store_id"] == 2 and images[3]["name"] == "Two"


def test_a_db_made_before_a_column_was_added_gets_it_and_captures_it(engine):
    # Arrange: the customers table as an earlier version made it, without external_id, change capture on
    source.enable_cdc(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # SQLite 3.35+ drops a column only without its unique constraint
            conn.exec_driver_sql("DROP TRIGGER cdc_customers_i")
            conn.exec_driver_sql("CREATE TABLE old AS SELECT * FROM customers")
            conn.exec_driver_sql("DROP TABLE customers")
            conn.exec_driver_sql("ALTER TABLE old RENAME TO customers")
            conn.exec_driver_sql("ALTER TABLE customers DROP COLUMN external_id")
        else:
            conn.exec_driver_sql("ALTER TABLE customers DROP COLUMN external_id")

    # Act
    source.create_schema(engine)
    source.create_schema(engine)  # idempotent
    with engine.begin() as conn:
        conn.execute(sa.insert(source.customers), [{
            "customer_id": 1, "external_id": "C1", "first_name": "A", "last_name": "B", "email_opt_in": False,
            "sms_opt_in": False, "loyalty_tier": "none", "signup_date": T0.date(), "updated_at": T0}])
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():  # its unique index came with it
            conn.execute(sa.insert(source.customers), [{
                "customer_id": 2, "external_id": "C1", "first_name": "A", "last_name": "B", "email_opt_in": False,
                "sms_opt_in": False, "loyalty_tier": "none", "signup_date": T0.date(), "updated_at": T0}])

    # Assert: the new column is captured
    with engine.connect() as conn:
        log = conn.execute(sa.select(source.cdc_log.c.row_data).where(source.cdc_log.c.table_name == "customers"))
        assert [json.loads(data)["external_id"] for data in log.scalars()] == ["C1"]


def test_local_extract_writes_dms_layout_full_load_then_cdc(engine, local_env):
    with engine.begin() as conn:
        conn.execute(sa.insert(source.stores), [store_row(5, "Five, the big one", T0 - dt.timedelta(days=1))])
    source.enable_cdc(engine)
    task = dms_task.LocalReplicationTask(engine)

    task.start("start-replication", dt.date(2026, 10, 31))
    _changes(engine)
    run = task.start("resume-processing", dt.date(2026, 11, 1))

    folder = paths.dms_landing() / "stores"
    load = list(csv.reader(io.StringIO((folder / "LOAD00000001.csv").read_text())))
    assert load[0] == ["Op", "dms_commit_ts", "store_id", "name", "city", "region", "opened_date", "updated_at"]
    assert load[1] == ["I", "2026-11-01 00:00:00.000000", "5", "Five, the big one", "Salem", "north", "2020-01-02",
                       "2026-10-31 09:30:00.123456"]
    # CdcMaxBatchInterval is an hour: batches at 09:30, 11:30 and 23:30, named by their first commit.
    day_files = sorted(p.name for p in (folder / "2026/11/01").iterdir())
    assert day_files == sorted(run["cdc_files"]["stores"]) == [
        "20261101-0930001234.csv", "20261101-1130001234.csv", "20261101-2330000000.csv"]
    rows = []
    for name in day_files:
        rows += list(csv.reader(io.StringIO((folder / "2026/11/01" / name).read_text())))[1:]
    assert [(r[0], r[2], r[3]) for r in rows] == [("I", "1", "One"), ("I", "2", "Two"), ("U", "1", "Uno"),
                                                    ("D", "2", "Two")]

    manifest = dms_landing.check_landing(dt.date(2026, 11, 1), "resume-processing")
    assert manifest["tables"]["stores"]["cdc_ops"] == {"I": 2, "U": 1, "D": 1}
    assert storage.is_committed(paths.dms_manifest(dt.date(2026, 11, 1)))


def test_rerunning_a_day_rewrites_the_same_bytes(engine, local_env):
    source.enable_cdc(engine)
    task = dms_task.LocalReplicationTask(engine)
    task.start("start-replication", dt.date(2026, 10, 31))
    _changes(engine)
    day_folder = paths.dms_landing() / "stores" / "2026/11/01"

    task.start("resume-processing", dt.date(2026, 11, 1))
    first = {p.name: p.read_bytes() for p in day_folder.iterdir()}
    task.start("resume-processing", dt.date(2026, 11, 1))
    second = {p.name: p.read_bytes() for p in day_folder.iterdir()}

    assert first == second and len(first) == 3


def test_resume_before_any_full_load_is_refused(engine, local_env):
    with pytest.raises(RuntimeError, match="no full load at or before 2026-11-01: start the task with start-repl"):
        dms_task.LocalReplicationTask(engine).start("resume-processing", dt.date(2026, 11, 1))
    with pytest.raises(ValueError, match="expected one of start-replication, reload-target, resume-processing"):
        dms_task.LocalReplicationTask(engine).start("restart", dt.date(2026, 11, 1))


def test_a_failed_reload_keeps_the_previous_full_load_whole(engine, local_env, monkeypatch):
    with engine.begin() as conn:
        conn.execute(sa.insert(source.stores), [store_row(5, "Five", T0 - dt.timedelta(days=1))])
    source.enable_cdc(engine)
    task = dms_task.LocalReplicationTask(engine)
    task.start("start-replication", dt.date(2026, 10, 31))
    root = paths.dms_landing()
    before = {storage.relative(p, root): p.read_bytes() for p in root.rglob("LOAD*.csv")}
    assert "stores/LOAD00000001.csv" in before
    with engine.begin() as conn:
        conn.execute(sa.insert(source.stores), [store_row(6, "Six", T0)])
    written = []
    original = task._write_load_files

    def fail_on_third_table(folder, tbl, *args):
        written.append(tbl.name)
        if len(written) == 3:
            raise OSError("disk full")
        return original(folder, tbl, *args)

    monkeypatch.setattr(task, "_write_load_files", fail_on_third_table)
    with pytest.raises(OSError, match="disk full"):
        task.start("reload-target", dt.date(2026, 11, 1))

    assert {storage.relative(p, root): p.read_bytes() for p in root.rglob("LOAD*.csv")} == before
    assert not [p for p in root.iterdir() if p.name.startswith("_staging")]


def test_backfilling_a_day_before_a_reload_keeps_that_days_changes(engine, local_env):
    source.enable_cdc(engine)
    task = dms_task.LocalReplicationTask(engine)
    task.start("start-replication", dt.date(2026, 10, 31))
    _changes(engine)
    task.start("resume-processing", dt.date(2026, 11, 1))
    day_folder = paths.dms_landing() / "stores" / "2026/11/01"
    before = {p.name: p.read_bytes() for p in day_folder.iterdir()}
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 3))
    task.start("reload-target", dt.date(2026, 11, 2))

    run = task.start("resume-processing", dt.date(2026, 11, 1))

    assert run["full_load_partition"] == "2026-10-31"
    assert {p.name: p.read_bytes() for p in day_folder.iterdir()} == before


def test_a_rebuilt_source_db_is_refused_until_a_full_load(engine, local_env):
    source.enable_cdc(engine)
    _changes(engine)
    task = dms_task.LocalReplicationTask(engine)
    task.start("start-replication", dt.date(2026, 11, 1))
    with engine.begin() as conn:
        conn.execute(sa.delete(source.cdc_log))

    with pytest.raises(RuntimeError, match=r"the source DB was rebuilt\. Run the DAG with force_full_load"):
        task.start("resume-processing", dt.date(2026, 11, 2))
    assert task.start("reload-target", dt.date(2026, 11, 2))["status"] == "stopped"


def test_rechecking_the_full_load_day_after_a_reload_gives_its_own_manifest(engine, local_env):
    """The full load of 11-01 is kept as the landing check copied it: a later reload writes over DMS's LOAD
    files, and a re-check of 11-01 still reads (and commits) exactly what 11-01 landed."""
    source.enable_cdc(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(source.stores), [store_row(5, "Five", T0 - dt.timedelta(days=1))])
    task = dms_task.LocalReplicationTask(engine)
    task.start("start-replication", dt.date(2026, 11, 1))
    first = dms_landing.check_landing(dt.date(2026, 11, 1), "start-replication")
    assert dms_landing.check_landing(dt.date(2026, 11, 1), "resume-processing", full_load=True) == first
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 5))
    task.start("reload-target", dt.date(2026, 11, 4))
    dms_landing.check_landing(dt.date(2026, 11, 4), "reload-target")

    assert dms_landing.check_landing(dt.date(2026, 11, 1), "resume-processing", full_load=True) == first
    assert storage.read_json(storage.resolve(paths.dms_manifest(dt.date(2026, 11, 1))) / "manifest.json") == first
