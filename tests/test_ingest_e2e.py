"""retail_ingest end to end with dag.test() on the local target, reconciled with the source DB."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from crosschannel.core import dms, gates, paths, source, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.local import dms_task
from crosschannel.sim import generator
from crosschannel.stages.ingest import landing as dms_landing
from crosschannel.stages.trusted import merge, publish
from crosschannel.stages.trusted import tasks as trusted_tasks
from crosschannel.stages.trusted.events import empty_identities, landed_day, type_day
from tests.conftest import configure, run_dag

RUN = "manual__test"  # the Airflow run whose candidates a test writes and gates
DAYS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
pytestmark = pytest.mark.e2e


def _landed_current_state(upto: dt.date) -> dict[str, set[tuple]]:
    """Full load plus every CDC file up to the day, applied per key in commit order (test oracle)."""
    state = {}
    for name in dms.mapped_tables():
        tbl = source.table(name)
        keys = [c.name for c in tbl.primary_key.columns]
        frames = []
        folder = paths.dms_landing() / name
        files = sorted(folder.glob("LOAD*.csv"))
        day = DAYS[0]
        while day <= upto:
            manifest = storage.read_json(storage.resolve(paths.dms_manifest(day)) / "manifest.json")
            files += [folder / f for f in manifest["tables"][name]["cdc_files"]]  # "YYYY/MM/DD/<file>.csv"
            day += dt.timedelta(days=1)
        for order, path in enumerate(files):
            frame = pd.read_csv(io.StringIO(path.read_text()), dtype=str, keep_default_na=False)
            frames.append(frame.assign(_file=order, _row=range(len(frame))))
        changes = pd.concat(frames).sort_values(["dms_commit_ts", "_file", "_row"], kind="stable")
        latest = changes.groupby(keys, sort=False).tail(1)
        latest = latest[latest["Op"] != "D"]
        state[name] = set(latest[[c.name for c in tbl.columns]].itertuples(index=False, name=None))
    return state


def _source_state(engine) -> dict[str, set[tuple]]:
    state = {}
    with engine.connect() as conn:
        for name in dms.mapped_tables():
            tbl = source.table(name)
            state[name] = {
                tuple(dms_task.format_value(c, v) for c, v in zip(tbl.columns, row, strict=True))
                for row in conn.execute(sa.select(tbl))
            }
    return state


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, airflow_db):
    """Generate a retailer, then for three days: advance it one day and run retail_ingest."""
    tmp = tmp_path_factory.mktemp("ingest")
    with pytest.MonkeyPatch.context() as monkeypatch:
        cfg = configure(monkeypatch, tmp)
        generator.generate(cfg.generator)
        engine = source.connect(cfg.source.sqlalchemy_url)
        results = {}
        for day in DAYS:
            (change,) = generator.advance(1)
            run = run_dag("retail_ingest", day.isoformat())
            with engine.connect() as conn:
                counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                          for t in source.RETAIL_TABLES}
            results[day] = {"run": run, "change": change, "counts": counts}
        yield {"cfg": cfg, "engine": engine, "results": results}


def test_every_run_succeeds_and_commits_its_partitions(ingested):
    for day, result in ingested["results"].items():
        assert result["run"].state == "success"
        assert storage.is_committed(paths.dms_manifest(day))
        segment = paths.segment_landing(day)
        assert storage.is_committed(segment)
        assert storage.read_json(storage.resolve(segment) / "manifest.json")["messages"] == result["change"]["events"]


def test_first_run_is_a_full_load_matching_the_source_row_counts(ingested):
    first = ingested["results"][DAYS[0]]
    manifest = storage.read_json(storage.resolve(paths.dms_manifest(DAYS[0])) / "manifest.json")

    assert manifest["full_load"] is True
    assert {n: t["full_load_rows"] for n, t in manifest["tables"].items()} == first["counts"]


def test_cdc_operations_match_the_changes_the_generator_made(ingested):
    for day in DAYS[1:]:
        manifest = storage.read_json(storage.resolve(paths.dms_manifest(day)) / "manifest.json")
        made = ingested["results"][day]["change"]["changes"]

        assert manifest["full_load"] is False
        landed = {n: t["cdc_ops"] for n, t in manifest["tables"].items() if any(t["cdc_ops"].values())}
        assert landed == made
        assert made["orders"]["I"] > 0 and made["orders"]["U"] > 0


def test_full_load_plus_cdc_reconciles_with_the_source_db(ingested):
    landed = _landed_current_state(DAYS[-1])
    current = _source_state(ingested["engine"])

    for name in dms.mapped_tables():
        assert len(landed[name]) == len(current[name]), name
        assert landed[name] == current[name], name


def test_rerunning_the_full_load_day_rechecks_it_without_reloading(ingested):
    day = DAYS[0]
    manifest_before = (storage.resolve(paths.dms_manifest(day)) / "manifest.json").read_bytes()
    loads_before = {storage.relative(p, paths.dms_landing()): p.read_bytes()
                    for p in paths.dms_landing().rglob("LOAD*.csv")}

    run = run_dag("retail_ingest", day.isoformat())

    assert run.state == "success"
    assert (storage.resolve(paths.dms_manifest(day)) / "manifest.json").read_bytes() == manifest_before
    assert {storage.relative(p, paths.dms_landing()): p.read_bytes()
            for p in paths.dms_landing().rglob("LOAD*.csv")} == loads_before


def test_rerunning_a_day_is_idempotent(ingested):
    day = DAYS[1]
    folder = paths.dms_landing() / "orders" / day.strftime("%Y/%m/%d")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    manifest_before = (storage.resolve(paths.dms_manifest(day)) / "manifest.json").read_bytes()

    run = run_dag("retail_ingest", day.isoformat())

    assert run.state == "success"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert (storage.resolve(paths.dms_manifest(day)) / "manifest.json").read_bytes() == manifest_before


def test_asset_events_carry_the_partition(ingested):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent, AssetModel).join(AssetModel, AssetEvent.asset_id == AssetModel.id).all()
    partitions = {(asset.name, event.extra.get("partition")) for event, asset in events}

    for day in DAYS:
        assert ("crosschannel.landing.dms", day.isoformat()) in partitions
        assert ("crosschannel.landing.segment", day.isoformat()) in partitions


def test_a_bad_cdc_row_fails_the_landing_and_keeps_the_previous_manifest(ingested):
    day = DAYS[2]
    folder = paths.dms_landing() / "orders" / day.strftime("%Y/%m/%d")
    path = max(folder.iterdir(), key=lambda p: len(p.read_bytes()))
    original = path.read_bytes()
    manifest_before = (storage.resolve(paths.dms_manifest(day)) / "manifest.json").read_bytes()
    rows = list(csv.reader(io.StringIO(original.decode())))
    assert len(rows) >= 3
    rows[1][0] = "X"
    rows[2][2] = ""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode())
    try:
        with pytest.raises(dms.DmsLandingError) as caught:
            dms_landing.check_landing(day, "resume-processing")
    finally:
        path.write_bytes(original)

    message = str(caught.value)
    assert path.name in message and "(table orders)" in message
    assert "line 2: column Op: 'X' is not one of I, U, D" in message
    assert "line 3: column order_id: primary key is empty" in message
    assert (storage.resolve(paths.dms_manifest(day)) / "manifest.json").read_bytes() == manifest_before


def test_trusted_current_state_equals_the_source_db(ingested):
    """The CDC merge (include/sql/trusted/cdc_merge.sql on DuckDB) over the landed files gives, for every
    table, exactly the source DB's rows at the last partition (keys and every value)."""

    current = _source_state(ingested["engine"])
    for name in dms.mapped_tables():
        tbl = source.table(name)
        state = merge.current_state(name, DAYS[-1])
        rows = {tuple(dms_task.format_value(c, v) for c, v in zip(tbl.columns, row.values(), strict=True))
                for row in state.to_pylist()}

        assert state.num_rows == len(current[name]), name
        assert rows == current[name], name


def test_trusted_partition_is_written_whole(ingested):
    import pyarrow.parquet as pq

    state = merge.current_state("orders", DAYS[1])
    target = merge.write_table("orders", DAYS[1], state, candidate=False)

    assert storage.is_committed(target)
    with (storage.resolve(target) / "part-00000.parquet").open("rb") as handle:
        assert pq.read_table(handle).equals(state)


def test_a_gap_in_the_landed_days_is_refused(ingested):

    with pytest.raises(merge.TrustedInputError, match=r"no committed landing manifest for 2026-11-0[45]"):
        merge.landing_files("orders", dt.date(2026, 11, 10))


def test_the_glue_job_script_gives_the_duckdb_state_under_local_pyspark(ingested, spark, tmp_path):
    """include/glue/run_sql.py (the generic Glue 5.x job) on the landed files: same rows as DuckDB."""

    from tests.conftest import glue_script

    job = glue_script()
    planned = next(j for j in merge.plan_merge(DAYS[-1]) if "/orders/" in j["--output_path"])
    argv = [token for name, value in planned.items() for token in (name, value)]
    args = job.parse_args(["--JOB_NAME", "crosschannel-sql", *argv[:-1], (tmp_path / "out").as_uri()])

    out = storage.location((tmp_path / "out").as_uri())
    with storage.committing(out) as staging:  # a version committed by the worker first: the two commits interoperate
        (staging / "part-00000.parquet").write_bytes(b"not read")
    earlier = storage.version_of(out)

    rows = job.run(spark, args["sql_path"], args["inputs"], args["output_path"])

    expected = merge.current_state("orders", DAYS[-1])
    written = sqljobs.read_partition(out)
    assert rows == expected.num_rows == written.num_rows
    key = [("order_id", "ascending")]
    assert written.sort_by(key).to_pylist() == expected.sort_by(key).to_pylist()
    glue_version = storage.version_of(out)
    assert glue_version != earlier and list(storage.read_json(out / storage.MARKER)["retired"]) == [earlier]
    (glue_file,) = storage.resolve(out).glob("*.parquet")
    with storage.committing(out) as staging:  # and the worker commits over Glue's version
        (staging / "part-00000.parquet").write_bytes(glue_file.read_bytes())
    assert sorted(storage.read_json(out / storage.MARKER)["retired"]) == sorted([earlier, glue_version])
    assert sqljobs.read_partition(out).num_rows == rows


def test_retail_trusted_commits_every_table_for_the_partition(ingested):

    run = run_dag("retail_trusted", DAYS[-1].isoformat())

    assert run.state == "success"
    summary = publish.summarize(DAYS[-1])
    source_rows = {name: len(rows) for name, rows in _source_state(ingested["engine"]).items()}
    assert {name: summary["rows"][name] for name in source_rows} == source_rows
    assert all(summary["gates"].values()) and len(summary["gates"]) == len(source_rows) + 4
    assert summary["features_rows"] == summary["rows"]["customer_360"] == summary["rows"]["customers"]
    segment = paths.segment_landing(DAYS[-1])
    assert summary["rows"]["events"] == storage.read_json(storage.resolve(segment) / "manifest.json")["messages"]
    assert set(summary["data_docs"]) == {"data_docs", "data_docs_derived"}
    assert all(storage.location(url).exists() for url in summary["data_docs"].values())


def test_a_critical_gate_failure_keeps_the_previous_good_partition(ingested):
    """A merge result with a duplicated key and a bad channel stops at the gate, naming table, column and
    expectation with sample values; the published trusted partition is untouched."""
    import pyarrow as pa

    day = DAYS[-1]
    assert run_dag("retail_trusted", day.isoformat()).state == "success"
    published = (storage.resolve(paths.trusted("orders", day)) / "part-00000.parquet").read_bytes()
    good = merge.current_state("orders", day)
    bad = pa.concat_tables([good, good.slice(0, 1)])
    channel = bad.column("channel").to_pylist()
    channel[1] = "fax"
    bad = bad.set_column(bad.schema.get_field_index("channel"), "channel", pa.array(channel, pa.string()))
    lines = merge.current_state("order_lines", day)
    order_ids = lines.column("order_id").to_pylist()
    order_ids[0] = 999_999_999
    lines = lines.set_column(0, "order_id", pa.array(order_ids, pa.int64()))
    replaced = {"orders": bad, "order_lines": lines}
    for table in dms.mapped_tables():
        merge.write_table(table, day, replaced.get(table) or merge.current_state(table, day), run=RUN)
    for name in ("identity_map", "events"):
        merge.write_table(name, day, sqljobs.read_partition(paths.trusted(name, day)), run=RUN)

    with pytest.raises(gates.GateFailed) as caught:
        _gate_trusted(day)

    message = str(caught.value)
    assert "trusted_orders (partition 2026-11-03), column order_id: expect_column_values_to_be_unique" in message
    assert "column channel: expect_column_values_to_be_in_set" in message and "'fax'" in message
    assert "trusted_order_lines (partition 2026-11-03), column order_id: expect_column_values_to_be_keys_of" in message
    assert "999999999" in message
    assert (storage.resolve(paths.trusted("orders", day)) / "part-00000.parquet").read_bytes() == published
    report = storage.read_json(storage.zone("reports", f"dt={day}", "gates", "trusted_orders.json"))
    assert report["success"] is False and report["rows"] == good.num_rows + 1


def test_landed_segment_day_types_into_events(ingested):
    """The landed Segment partition read back, typed and stitched: one event per distinct messageId, and
    every Order Completed attributed to the order's customer in the trusted orders."""

    day = DAYS[1]
    _, events = type_day(sqljobs.read_input("segment_lines", landed_day(day)), empty_identities())

    segment = paths.segment_landing(day)
    assert events.num_rows == storage.read_json(storage.resolve(segment) / "manifest.json")["messages"]
    buyers = {r["order_id"]: r["customer_id"] for r in merge.current_state("orders", day).to_pylist()}
    completed = [e for e in events.to_pylist() if e["event_name"] == "Order Completed"]
    assert completed and all(buyers[e["order_id"]] == e["customer_id"] for e in completed)


def test_events_of_unknown_customers_are_reported_not_stopped(ingested):
    """A userId naming no customer keeps its events (their customer_id dangles): the gate reports it as a
    warning with the value, publishes the day, and the derived stage counts those events for nobody."""
    import pyarrow as pa

    day = DAYS[-1]
    assert run_dag("retail_trusted", day.isoformat()).state == "success"
    for table in dms.mapped_tables():
        merge.write_table(table, day, sqljobs.read_partition(paths.trusted(table, day)), run=RUN)
    merge.write_table("identity_map", day, sqljobs.read_partition(paths.trusted("identity_map", day)), run=RUN)
    events = sqljobs.read_partition(paths.trusted("events", day))
    ids = events.column("customer_id").to_pylist()
    ids[0] = 987_654_321
    merge.write_table("events", day, events.set_column(events.schema.get_field_index("customer_id"), "customer_id",
                                                         pa.array(ids, pa.int64())), run=RUN)

    outcome = _gate_trusted(day)

    assert outcome["gates"]["trusted_events"] is True and outcome["warnings"]["trusted_events"] >= 1
    report = storage.read_json(storage.zone("reports", f"dt={day}", "gates", "trusted_events.json"))
    (dangling,) = [f for f in report["failed_warning"]
                   if f["column"] == "customer_id" and f["expectation"] == "expect_column_values_to_be_keys_of"]
    assert dangling["sample"] == [987654321]
    assert dangling["keys"] == [{"message_id": events.column("message_id")[0].as_py()}]
    assert sqljobs.read_partition(paths.trusted("events", day)).column("customer_id")[0].as_py() == 987654321


def test_an_empty_day_flows_through_to_the_trusted_zone(ingested, monkeypatch):
    """A day without a change at the source or a Segment event (allowed by segment.allow_empty_day): the
    trusted state equals the day before's, with no events. Runs last: it lands 2026-11-04."""

    day = DAYS[-1] + dt.timedelta(days=1)
    monkeypatch.setenv("CROSSCHANNEL__SEGMENT__ALLOW_EMPTY_DAY", "true")
    get_config.cache_clear()
    assert run_dag("retail_trusted", DAYS[-1].isoformat()).state == "success"

    assert run_dag("retail_ingest", day.isoformat()).state == "success"
    assert run_dag("retail_trusted", day.isoformat()).state == "success"

    summary = publish.summarize(day)
    assert summary["rows"]["events"] == 0 and all(summary["gates"].values())
    for table in dms.mapped_tables():
        before = sqljobs.read_partition(paths.trusted(table, DAYS[-1]))
        assert sqljobs.read_partition(paths.trusted(table, day)).equals(before), table
    identities = sqljobs.read_partition(paths.trusted("identity_map", day))
    assert identities.equals(sqljobs.read_partition(paths.trusted("identity_map", DAYS[-1])))
    get_config.cache_clear()


def _gate_trusted(day):
    """retail_trusted's gate as the DAG runs it on local: plan_gate_trusted, check_trusted, gate_trusted."""
    for job in trusted_tasks.plan_gate_trusted(day, RUN):
        gates.run_local(job)
    return trusted_tasks.gate_trusted(day, RUN)


ONE_TRUSTED_RUN = """
import datetime as dt, json, sys
from crosschannel.core import gates, sqljobs
from crosschannel.stages.trusted import tasks

day, run = dt.date.fromisoformat(sys.argv[1]), sys.argv[2]
for plan in (tasks.plan_merge, tasks.plan_identities, tasks.plan_events):
    for job in plan(day, run):
        sqljobs.run_local(job)
for job in tasks.plan_gate_trusted(day, run):
    gates.run_local(job)
print(json.dumps(tasks.gate_trusted(day, run)["rows"]))
"""


def test_two_runs_of_one_partition_at_once_never_empty_it(ingested):
    """Two retail_trusted runs of one day at the same time (a backfill beside a scheduled run, a retry beside a
    lost worker's attempt), each in its own process: each gates and publishes its own candidates, so the
    published partitions are whole, never empty or mixed. (Shared candidates left every table empty.)"""
    import os
    import subprocess
    import sys

    day = DAYS[-1]
    assert run_dag("retail_trusted", day.isoformat()).state == "success"
    expected = {name: publish.rows_in(paths.trusted(name, day)) for name in [*dms.mapped_tables(), "identity_map",
                                                                               "events"]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [subprocess.Popen([sys.executable, "-c", ONE_TRUSTED_RUN, day.isoformat(), run_id], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for run_id in ("scheduled__2026-11-04", "backfill__2026-11-03")]
    results = [run.communicate(timeout=600) for run in runs]

    for run, (out, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err[-3000:]
        assert json.loads(out.splitlines()[-1]) == {f"trusted_{k}": v for k, v in expected.items()}
    for name, rows in expected.items():
        folder = paths.trusted(name, day)
        assert storage.is_committed(folder) and publish.rows_in(folder) == rows, name


def test_a_long_list_of_inputs_goes_to_glue_as_a_file_and_both_engines_read_it(ingested, spark, tmp_path, monkeypatch):
    """Glue refuses a run whose arguments exceed 260 KB, and a merge lists every DMS file since the full load: inputs
    over sqljobs.INLINE_INPUTS_BYTES are written beside the SQL and passed as --inputs_path; DuckDB and the Glue script
    read the same state through it."""
    from tests.conftest import glue_script

    inline = next(j for j in merge.plan_merge(DAYS[-1]) if "/orders/" in j["--output_path"])
    monkeypatch.setattr(sqljobs, "INLINE_INPUTS_BYTES", 100)  # this merge's inputs are larger
    planned = next(j for j in merge.plan_merge(DAYS[-1]) if "/orders/" in j["--output_path"])

    assert "--inputs" not in planned and planned["--inputs_path"].endswith("orders_cdc_merge.sql.inputs.json")
    assert sqljobs.job_inputs(planned) == json.loads(inline["--inputs"])
    states = {}
    for engine in ("duckdb", "glue"):
        out = (tmp_path / engine).as_uri()
        if engine == "duckdb":
            sqljobs.run_local({**planned, "--output_path": out})
        else:
            argv = [token for name, value in {**planned, "--output_path": out}.items() for token in (name, value)]
            glue_script().run(spark, **glue_script().parse_args(argv))
        states[engine] = sqljobs.read_partition(storage.location(out)).sort_by([("order_id", "ascending")])
    assert states["duckdb"].to_pylist() == states["glue"].to_pylist()
    assert states["duckdb"].num_rows == merge.current_state("orders", DAYS[-1]).num_rows > 0
