"""Every DAG imports on both targets with the same graph, follows the house policy, and parses cheaply."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from unittest import mock

import pytest

from crosschannel.core.config import get_config
from crosschannel.core.partition import is_backfill, partition_day
from tests.conftest import AWS_ENV, BUNDLE, PARSE_TIME

DAG_FILES = sorted((BUNDLE / "dags").glob("*.py"))
TARGETS = {
    "local": {"CROSSCHANNEL__TARGET": "local"},
    "aws": {
        **AWS_ENV,
        "CROSSCHANNEL__STORAGE__ROOT": "s3://crosschannel-lake/data",
        "CROSSCHANNEL__SEGMENT__LOGS_URI": "s3://crosschannel-segment/segment-logs",
    },
}


def _forbidden(what):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} at DAG parse time")

    return refuse


def _parse(path: Path, target: str, monkeypatch, record_property=None):
    """Load one DAG file as the dag processor does, with Variables, Connections, databases and the network
    refused."""
    from airflow.dag_processing.dagbag import DagBag

    for key, value in TARGETS[target].items():
        monkeypatch.setenv(key, value)
    get_config.cache_clear()
    guards = [
        mock.patch("airflow.sdk.Variable.get", _forbidden("Variable.get")),
        mock.patch("airflow.sdk.Connection.get", _forbidden("Connection.get")),
        mock.patch("airflow.sdk.bases.hook.BaseHook.get_connection", _forbidden("BaseHook.get_connection")),
        mock.patch.object(socket.socket, "connect", _forbidden("a network connection")),
        mock.patch.object(socket, "create_connection", _forbidden("a network connection")),
        mock.patch("sqlalchemy.create_engine", _forbidden("a database engine")),
        mock.patch("sqlite3.connect", _forbidden("a SQLite connection")),
        mock.patch("psycopg2.connect", _forbidden("a PostgreSQL connection")),
    ]
    for guard in guards:
        guard.start()
    try:
        started = time.perf_counter()
        bag = DagBag(str(path), safe_mode=False)
        seconds = time.perf_counter() - started
    finally:
        for guard in guards:
            guard.stop()
        get_config.cache_clear()
    if record_property:
        record_property(PARSE_TIME, (f"{path.name} ({target})", seconds))
    return bag


def _graph(dag):
    return {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}


def test_there_are_dag_files():
    assert DAG_FILES, "no DAG files found"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_imports_on_both_targets_with_the_same_graph(path, monkeypatch, record_property):
    graphs = {}
    for target in TARGETS:
        bag = _parse(path, target, monkeypatch, record_property)
        assert not bag.import_errors, bag.import_errors
        assert list(bag.dags) == [path.stem], "one DAG per file, file name = dag_id"
        graphs[target] = _graph(bag.dags[path.stem])
    assert graphs["local"] == graphs["aws"]


def test_aws_target_uses_the_provider_dms_operators(monkeypatch):
    from airflow.providers.amazon.aws.operators.dms import DmsStartTaskOperator
    from airflow.providers.amazon.aws.sensors.dms import DmsTaskCompletedSensor

    dag = _parse(BUNDLE / "dags" / "retail_ingest.py", "aws", monkeypatch).dags["retail_ingest"]

    start = dag.get_task("start_replication")
    assert isinstance(start, DmsStartTaskOperator)
    assert start.replication_task_arn == TARGETS["aws"]["CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN"]
    assert isinstance(dag.get_task("await_replication"), DmsTaskCompletedSensor)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_policy(path, monkeypatch):
    dag = _parse(path, "local", monkeypatch).dags[path.stem]

    assert dag.tags and "crosschannel" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 200, "the module docstring is the DAG's doc_md"
    assert dag.catchup is False, "backfills are explicit (airflow backfill create), never implicit"
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    for task in dag.tasks:
        assert task.owner == "data-platform", task.task_id
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        if task.task_type.endswith("DecoratedOperator"):
            doc = task.doc_md or task.python_callable.__doc__  # mapped tasks keep it on the callable
            assert doc, f"{task.task_id} needs a one-line docstring"
        assert any(type(cb).__name__ == "FailureNotifier" for cb in task.on_failure_callback), task.task_id
    assert "partition" not in dag.params, "the day is the run's partition key: one field, no Param beside it"
    from airflow.serialization.serialized_objects import DagSerialization

    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable  # as the api-server sees it
    assert timetable.partitioned or timetable.partitioned_at_runtime, "a manual run must accept a partition key"
    for name in dag.params:  # typed, validated and described: the trigger form shows them
        param = dag.params.get_param(name)
        assert param.schema.get("type") and param.description and param.schema.get("title"), name
    assert dag.deadline, "every DAG has a Deadline Alert (alerts.deadlines)"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_cold_without_heavy_modules(path, target, record_property):
    """Parse in a fresh interpreter, as a dag processor does: time it, and check heavy modules stay unloaded."""
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import sys, json, time\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "started = time.perf_counter()\n"
        f"bag = DagBag({str(path)!r})\n"
        "seconds = time.perf_counter() - started\n"
        "heavy = ['pandas', 'duckdb', 'xgboost', 'great_expectations', 'pyarrow',"
        " 'crosschannel.sim', 'crosschannel.local', 'crosschannel.stages', 'crosschannel.core.dms',"
        " 'crosschannel.core.source']\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'seconds': seconds,"
        " 'loaded': [m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy)]}))\n"
    )
    env = {**os.environ, **TARGETS[target], "PYTHONPATH": str(BUNDLE / "plugins") + os.pathsep + str(BUNDLE)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    record_property(PARSE_TIME, (f"{path.name} ({target}, fresh interpreter)", report["seconds"]))
    assert report["errors"] == {}
    assert report["loaded"] == []


def test_a_scheduled_run_processes_the_day_that_just_ended(monkeypatch):
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization

    dag = _parse(BUNDLE / "dags" / "retail_ingest.py", "local", monkeypatch).dags["retail_ingest"]
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable  # as the scheduler sees it
    info = timetable.next_dagrun_info_v2(last_dagrun_info=None, restriction=mock.Mock(
        earliest=pendulum.datetime(2026, 11, 2, tz="UTC"), latest=None, catchup=True))
    context = {"partition_key": info.partition_key, "params": {}}

    assert info.run_after == pendulum.datetime(2026, 11, 2, tz="UTC") and info.data_interval is None
    assert partition_day(context).isoformat() == "2026-11-01"
    assert partition_day({"partition_key": "2026-10-05", "dag_run": mock.Mock(conf={})}).isoformat() == "2026-10-05"
    with pytest.raises(ValueError, match="has no partition key: trigger it with a Partition Key"):
        partition_day({"params": {}})
    conf_run = mock.Mock(conf={"partition": "2026-10-05"})  # `airflow dags test -c`: Airflow offers no key there
    assert partition_day({"dag_run": conf_run, "params": {}}).isoformat() == "2026-10-05"
    assert partition_day({"dag_run": conf_run, "partition_key": "2026-11-01"}).isoformat() == "2026-11-01"  # key wins
    with pytest.raises(ValueError, match=r"dag_run\.conf: partition '2026-1-05' is not a YYYY-MM-DD day"):
        partition_day({"dag_run": mock.Mock(conf={"partition": "2026-1-05"})})
    with pytest.raises(ValueError, match="partition key: partition '2026-13-99x' is not a YYYY-MM-DD day"):
        partition_day({"partition_key": "2026-13-99x"})


def test_the_weekly_training_run_is_keyed_by_the_sunday_it_trains_on(monkeypatch):
    """Mondays 04:00 UTC, keyed by the day that just ended: scheduled runs and backfills alike, through the
    serialized DAG (the custom timetable resolved through the plugin, as the scheduler does)."""
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization

    dag = _parse(BUNDLE / "dags" / "propensity_training.py", "local", monkeypatch).dags["propensity_training"]
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    info = timetable.next_dagrun_info_v2(last_dagrun_info=None, restriction=mock.Mock(
        earliest=pendulum.datetime(2026, 11, 24, tz="UTC"), latest=None, catchup=True))
    assert info.run_after == pendulum.datetime(2026, 11, 30, 4, tz="UTC") and info.partition_key == "2026-11-29"
    backfill = timetable.iter_partition_dagrun_infos(earliest=pendulum.datetime(2026, 11, 1, tz="UTC"),
                                                     latest=pendulum.datetime(2026, 11, 20, tz="UTC"))
    assert [i.partition_key for i in backfill] == ["2026-11-01", "2026-11-08", "2026-11-15"]
    sunday = timetable.iter_partition_dagrun_infos(earliest=pendulum.datetime(2026, 11, 29, tz="UTC"),
                                                   latest=pendulum.datetime(2026, 11, 29, tz="UTC"))
    assert [i.partition_key for i in sunday] == ["2026-11-29"]  # `backfill create --from-date = --to-date` a Sunday
    assert timetable.resolve_partition_date("2026-11-29") == info.partition_date  # a manual run's, as scheduled


def test_a_run_flag_is_a_real_boolean_from_the_conf_or_the_params():
    from crosschannel.core.partition import run_flag

    assert run_flag({"params": {"force_publish": True}}, "force_publish") is True
    assert run_flag({"params": {}}, "force_publish") is False
    conf_run = mock.Mock(conf={"force_publish": False})
    assert run_flag({"dag_run": conf_run, "params": {"force_publish": True}}, "force_publish") is False  # conf wins
    with pytest.raises(ValueError, match=r"force_full_load: 'false' is not true or false"):
        run_flag({"dag_run": mock.Mock(conf={"force_full_load": "false"}), "params": {}}, "force_full_load")


def test_a_backfill_is_recognised_at_the_head_and_downstream():

    assert is_backfill({"dag_run": mock.Mock(run_type="backfill")})
    assert not is_backfill({"dag_run": mock.Mock(run_type="scheduled"), "triggering_asset_events": {}})
    downstream = {"dag_run": mock.Mock(run_type="asset_triggered")}
    from_backfill = mock.Mock(extra={"partition": "2026-11-02"}, source_run_id="backfill__2026-11-02__x")
    carried = mock.Mock(extra={"partition": "2026-11-02", "backfill": True}, source_run_id="asset_triggered__x")
    scheduled = mock.Mock(extra={"partition": "2026-11-02", "backfill": False}, source_run_id="scheduled__x")
    assert is_backfill({**downstream, "triggering_asset_events": {"a": [from_backfill]}})
    assert is_backfill({**downstream, "triggering_asset_events": {"a": [scheduled], "b": [carried]}})
    assert not is_backfill({**downstream, "triggering_asset_events": {"a": [scheduled]}})


def test_campaign_readout_runs_per_partition_after_activation_and_publishes_the_readouts(monkeypatch):
    """Issue 17: the readouts run for each partition audience_activation publishes (its asset carries the key), the
    SQL job between planning and reading out, the optional digest last, and emit `crosschannel.readouts`."""
    from airflow.sdk import PartitionedAssetTimetable

    dag = _parse(BUNDLE / "dags" / "campaign_readout.py", "local", monkeypatch).dags["campaign_readout"]

    assert isinstance(dag.timetable, PartitionedAssetTimetable)
    assert dag.timetable.asset_condition.name == "crosschannel.activation"
    assert _graph(dag) == {"plan_readouts": ["build_readout_groups", "read_out"], "build_readout_groups": ["read_out"],
                           "read_out": ["send_digest"], "send_digest": []}
    assert dag.get_task("read_out").trigger_rule == "none_failed"  # also when no send is due (no job mapped)
    assert [asset.name for asset in dag.get_task("read_out").outlets] == ["crosschannel.readouts"]
    assert dag.max_active_runs == 1


def test_every_asset_location_holds_what_the_stage_writes(local_env):
    """An asset's location is a real folder: the one above what its stage commits (issue 16: the models' and the
    scores' pointed at ml/registry and ml/scores, which do not exist)."""
    import datetime as dt

    from crosschannel.core import paths, storage
    from crosschannel.wiring import assets

    day = dt.date(2026, 11, 2)
    written = {
        "crosschannel.landing.dms": paths.dms_manifest(day),
        "crosschannel.landing.segment": paths.segment_landing(day),
        "crosschannel.trusted": paths.trusted("orders", day),
        "crosschannel.features.customer": paths.features(day),
        "crosschannel.models": paths.registry("churn") / "v0001",
        "crosschannel.scores": paths.scores("churn", day, "scores"),
        "crosschannel.activation": paths.activation("segment", day),
        "crosschannel.readouts": paths.readouts(day, "x.json"),
    }
    for make in (assets.landing_dms, assets.landing_segment, assets.trusted, assets.features, assets.models,
                 assets.scores, assets.activation, assets.readouts):
        asset = make()
        assert storage.url_of(written.pop(asset.name)).startswith(asset.extra["location"] + "/"), asset.name
    assert not written
