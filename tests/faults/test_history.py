"""Faults against history: a reload must not rewrite the days before it, and a reload that dies half way must not
lose the full load in effect. Each case fails on the code before full loads were kept (issue 12, Why 2 and 5)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.local import dms_task
from crosschannel.stages.ingest import landing
from crosschannel.stages.trusted import merge
from tests.conftest import store_row

DAY1, DAY2, DAY3, DAY4 = (dt.date(2026, 11, d) for d in (1, 2, 3, 4))


@pytest.fixture
def task(tmp_path, local_env):
    """A source with two stores, replicated from 11-01; on 11-02 store 1 is renamed and store 3 opens."""
    engine = source.connect(f"sqlite:///{tmp_path / 'src.db'}", create=True)
    source.create_schema(engine)
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 1, 0, 0))
        conn.execute(sa.insert(source.stores), [store_row(1, "One", dt.datetime(2026, 10, 30)),
                                                store_row(2, "Two", dt.datetime(2026, 10, 30))])
    source.enable_cdc(engine)
    replication = dms_task.LocalReplicationTask(engine)
    replication.start("start-replication", DAY1)
    landing.check_landing(DAY1, "start-replication")
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 2, 10, 0))
        conn.execute(sa.update(source.stores).where(source.stores.c.store_id == 1)
                     .values(name="Uno", updated_at=dt.datetime(2026, 11, 2, 10, 0)))
        conn.execute(sa.insert(source.stores), [store_row(3, "Three", dt.datetime(2026, 11, 2, 10, 0))])
    replication.start("resume-processing", DAY2)
    landing.check_landing(DAY2, "resume-processing")
    yield replication, engine
    engine.dispose()


def _names(day: dt.date) -> dict[int, str]:
    state = merge.current_state("stores", day).to_pydict()
    return dict(zip(state["store_id"], state["name"], strict=True))


def _later_changes(engine) -> None:
    """After 11-02: store 2 closes and store 1 is renamed again (what a reload on 11-03 snapshots)."""
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime(2026, 11, 3, 9, 0))
        conn.execute(sa.delete(source.stores).where(source.stores.c.store_id == 2))
        conn.execute(sa.update(source.stores).where(source.stores.c.store_id == 1)
                     .values(name="Eins", updated_at=dt.datetime(2026, 11, 3, 9, 0)))
        source.set_clock(conn, dt.datetime(2026, 11, 4, 0, 0))


def _reload_dies_between_delete_and_move(replication, monkeypatch) -> None:
    """Reload 11-03 and lose the worker once the old LOAD files are deleted, before the new ones are moved in."""
    def worker_lost(self, path1, path2, *args, **kwargs):
        raise SystemExit("worker lost")

    monkeypatch.setattr(type(paths.dms_landing().fs), "mv", worker_lost)
    with pytest.raises(SystemExit):
        replication.start("reload-target", DAY3)
    monkeypatch.undo()
    assert not list((paths.dms_landing() / "stores").glob("LOAD*.csv"))


def test_a_reload_does_not_rewrite_the_days_before_it(task):
    """Why 2: after a reload on 11-03, re-running 11-01 and 11-02 (landing and state) gives exactly their state."""
    replication, engine = task
    before = {day: _names(day) for day in (DAY1, DAY2)}
    manifests = {day: storage.read_json(storage.resolve(paths.dms_manifest(day)) / "manifest.json")
                 for day in (DAY1, DAY2)}
    assert before == {DAY1: {1: "One", 2: "Two"}, DAY2: {1: "Uno", 2: "Two", 3: "Three"}}
    _later_changes(engine)
    replication.start("reload-target", DAY3)
    landing.check_landing(DAY3, "reload-target")
    assert _names(DAY3) == {1: "Eins", 3: "Three"}

    assert landing.check_landing(DAY1, "resume-processing", full_load=True) == manifests[DAY1]
    assert landing.check_landing(DAY2, "resume-processing") == manifests[DAY2]
    assert {day: _names(day) for day in (DAY1, DAY2)} == before


def test_a_reload_killed_half_way_keeps_the_full_load_in_effect(task, monkeypatch):
    """Why 5: the reload dies after a table's LOAD files were deleted; a plain run of the next
    day still builds its state from the full load that was in effect, and a re-run of the reload day completes."""
    replication, engine = task
    _later_changes(engine)
    expected_day3 = {1: "Eins", 3: "Three"}
    _reload_dies_between_delete_and_move(replication, monkeypatch)

    replication.start("resume-processing", DAY3)  # the on-call's plain re-run, without force_full_load
    landing.check_landing(DAY3, "resume-processing")
    assert _names(DAY3) == expected_day3

    replication.start("reload-target", DAY4)  # and the reload, re-run, completes
    landing.check_landing(DAY4, "reload-target")
    assert _names(DAY4) == expected_day3
    assert _names(DAY2) == {1: "Uno", 2: "Two", 3: "Three"}


def test_a_landing_check_of_a_half_done_reload_is_refused(task, monkeypatch):
    """A reload that died half way leaves LOAD files missing (or of two transfer times): a landing check of it as
    a full load refuses them, commits no copy, and the days before keep their state."""
    replication, engine = task
    _later_changes(engine)
    _reload_dies_between_delete_and_move(replication, monkeypatch)
    with pytest.raises(landing.DmsLandingError, match="no LOAD file holds a row"):
        landing.check_landing(DAY3, "reload-target")
    assert not storage.is_committed(paths.dms_full_load(DAY3))
    assert _names(DAY2) == {1: "Uno", 2: "Two", 3: "Three"}
