"""The whole chain at a given scale: each stage's seconds from Airflow against a floor measured in the same run.

    make bench-scale CUSTOMERS=100000 [ARGS="--reuse"]
    (or: PYTHONPATH=plugins .venv/bin/python bench/scale.py --customers N [--root DIR] [--reuse])

Generates the synthetic retailer of N customers in its own storage root and SQLite source DB (default
.data/bench_scale_<N>/, never the demo's state) and keeps a pristine copy of it there (pristine/: the source DB,
the generator's state and the Segment logs); --reuse restores that copy instead of generating again. Then, as
`make demo` does (crosschannel.sim.demo), it advances the retailer one day and runs the stage DAGs for that
partition with dag.test(): on the first day retail_ingest (the DMS full load), retail_trusted, propensity_training
(with the configured tuning budget: models.max_trials, models.max_rounds), propensity_scoring and
audience_activation; then one regular day, the same without training. campaign_readout is not run.
activation.personalize.min_interactions is 1 unless set in the environment (a small retailer's day has fewer new
interactions than Personalize's minimum of 1,000, which would fail the run: the export is measured whatever its
size). The Airflow
metadata DB is the demo's: $AIRFLOW_HOME, else .data/airflow (`make airflow-db` creates it); the runs are told
apart by their run ids.

Stage seconds are the Airflow task instances' end_date - start_date, summed per stage over the day's runs
(mapped tasks: every map index):

    extract            plan_extract, start_replication, await_replication (the local DMS task: full load, CDC)
    landing            land_dms_files (the landing check and manifest), land_segment_events
    trusted_merge      plan_merge, merge_table, plan_identities, map_identities, plan_events, type_events
    gates              plan_gate_trusted, check_trusted, gate_trusted and the same for derived (Great
                       Expectations suites, then publishing the partitions)
    features           plan_derived, build_derived (customer 360, customer features), publish_trusted
    training_datasets  plan_snapshots, snapshot_features, plan_datasets, build_dataset, check_datasets
    tuning_training    plan_tuning, tune_model, plan_training, train_model
    model_evaluation   evaluate_models, publish_models
    recommenders       plan_solutions, train_solution, register_solutions
    scoring            plan_scoring, build_scoring_input, plan_transforms, create_model, score_model,
                       plan_score_gate, check_scores, gate_scores, publish_scores
    activation         every task of audience_activation
    other              a task of the first five DAGs not named above (a task added since)
    airflow            each dag.test() wall time minus its tasks' (dag.test's scheduling loop, XCom, the DB);
                       parsing the DAG files is not counted (the dag-processor's work, printed apart)

A stage's floor is the same I/O done by DuckDB, pyarrow or xgboost alone, on the same data, timed after that day's
DAGs (not counted in the day's seconds):

    extract            the source tables (first day: every mapped table; the day's change-log rows) read from
                       SQLite into Arrow and written as CSV
    landing            DuckDB reading every DMS file of the partition's manifest (CSV, all text), and the landed
                       Segment files read and written back as gzip JSON lines
    trusted_merge,     DuckDB reading each SQL job's inputs (the plans' XComs: DMS CSVs or Parquet partitions) and
    features           writing them to Parquet untransformed (inputs a run removed after use are left out)
    training_datasets  the same for the snapshot jobs, plus pyarrow reading and rewriting every dataset CSV
    gates              one DuckDB query per gated partition computing count(*), and count / min / max of every
                       column (the aggregates the expectation suites check)
    tuning_training    per training job of the day (every tuning trial and each final job): pyarrow reading the
                       train and validation CSVs, then bare `xgb.train` with that job's hyperparameters and
                       number of boosted rounds (its model.tar.gz), evaluated on validation
    model_evaluation   bare `Booster.predict` of each trained model on its test CSV
    recommenders       DuckDB reading the trusted orders and order lines (the interactions) into Arrow
    scoring            per model: pyarrow reading the transform input, bare `predict` and
                       `predict(pred_contribs=True, approx_contribs=True)` (inference.py's reason codes) on the
                       champion, the outputs written as CSV (a baseline champion holds no booster: the input
                       read and written back)
    activation         DuckDB reading the day's scores, features and trusted customers, orders and order lines
                       and writing them as CSV
    other, airflow     none (null)

ratio = seconds / floor_seconds. Writes .data/reports/bench_scale_<N>.json:
{"customers", "generate_seconds" (null with --reuse), "advance_seconds" (the simulated days, outside the days'
seconds), "first_day_seconds", "next_day_seconds", "peak_rss_mb", "stages": {"<day>.<stage>": {"seconds",
"floor_seconds", "ratio"}}} with <day> first_day or next_day. peak_rss_mb is the larger of this process's peak
(dag.test runs the tasks in it) and its largest child's (the local SageMaker training jobs run train.py as
subprocesses), getrusage's ru_maxrss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from benchkit import BUNDLE, use_retailer  # first: it puts plugins/ on sys.path

STAGE_TASKS = {
    "extract": ("plan_extract", "start_replication", "await_replication"),
    "landing": ("land_dms_files", "land_segment_events"),
    "trusted_merge": ("plan_merge", "merge_table", "plan_identities", "map_identities", "plan_events", "type_events"),
    "gates": ("plan_gate_trusted", "check_trusted", "gate_trusted", "plan_gate_derived", "check_derived",
              "gate_derived"),
    "features": ("plan_derived", "build_derived", "publish_trusted"),
    "training_datasets": ("plan_snapshots", "snapshot_features", "plan_datasets", "build_dataset", "check_datasets"),
    "tuning_training": ("plan_tuning", "tune_model", "plan_training", "train_model"),
    "model_evaluation": ("evaluate_models", "publish_models"),
    "recommenders": ("plan_solutions", "train_solution", "register_solutions"),
    "scoring": ("plan_scoring", "build_scoring_input", "plan_transforms", "create_model", "score_model",
                "plan_score_gate", "check_scores", "gate_scores", "publish_scores"),
}
STAGE_OF = {task: stage for stage, tasks in STAGE_TASKS.items() for task in tasks}
DAG_STAGE = {"audience_activation": "activation"}  # every task of these DAGs
STAGES = (*STAGE_TASKS, "activation", "other", "airflow")
FIRST_DAY_DAGS = ("retail_ingest", "retail_trusted", "propensity_training", "propensity_scoring",
                  "audience_activation")
NEXT_DAY_DAGS = tuple(d for d in FIRST_DAY_DAGS if d != "propensity_training")
RETAILER = ("source.db", "generator", "segment-logs")  # what generating writes under the root, kept in pristine/
ZONES = ("landing", "system", "reports", "staging", "trusted", "features", "ml", "activation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--root", type=Path, help="storage root and source DB (default .data/bench_scale_<N>/)")
    parser.add_argument("--reuse", action="store_true", help="restore the retailer generated by an earlier run")
    args = parser.parse_args()
    root = (args.root or BUNDLE / ".data" / f"bench_scale_{args.customers}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    # Personalize's minimum of new interactions would fail a small retailer's regular day: the export is measured
    # whatever its size (set the variable to keep the configured minimum)
    minimum = os.environ.get("CROSSCHANNEL__ACTIVATION__PERSONALIZE__MIN_INTERACTIONS", "1")
    use_retailer(root, CROSSCHANNEL__GENERATOR__CUSTOMERS=str(args.customers),
                 CROSSCHANNEL__ACTIVATION__PERSONALIZE__MIN_INTERACTIONS=minimum)
    airflow_home = Path(os.environ.setdefault("AIRFLOW_HOME", str(BUNDLE / ".data" / "airflow")))
    if not (airflow_home / "airflow.db").exists() and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
        raise SystemExit(f"no Airflow metadata DB in {airflow_home}: run `make airflow-db` first")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(BUNDLE / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(BUNDLE / "plugins"))  # the bundle's timetables
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

    from crosschannel.core.config import get_config
    from crosschannel.sim import generator

    cfg = get_config()
    if cfg.generator.customers != args.customers or cfg.storage.url != root.as_uri():
        raise SystemExit(f"the configuration did not take the overrides: {cfg.generator.customers} customers, "
                         f"root {cfg.storage.url}")
    started = time.perf_counter()
    pristine = root / "pristine"
    generate_seconds = None
    if args.reuse and (pristine / "source.db").exists():
        print(f"reusing the retailer of {pristine}")
        _restore(root, pristine)
    else:
        if args.reuse:
            print(f"no retailer at {pristine} to reuse: generating it")
        _clear(root, RETAILER + ZONES + ("pristine",))
        print(f"generating a retailer of {args.customers:,} customers ({cfg.generator.history_days} days) in {root}")
        t0 = time.perf_counter()
        generator.generate(cfg.generator, force=True)
        generate_seconds = time.perf_counter() - t0
        _keep(root, pristine)
    _clear(root, ZONES)

    days, advance_seconds, parse_seconds = {}, 0.0, 0.0
    for label, dags in (("first_day", FIRST_DAY_DAGS), ("next_day", NEXT_DAY_DAGS)):
        t0 = time.perf_counter()
        (change,) = generator.advance(1)
        advance_seconds += time.perf_counter() - t0
        day = dt.date.fromisoformat(change["day"])
        print(f"{label} {day}: {change['events']:,} events; the DAGs")
        runs = {}
        for dag_id in dags:
            run_id, wall, parse = _run_dag(dag_id, day)
            runs[dag_id] = (run_id, wall)
            parse_seconds += parse
        t0 = time.perf_counter()
        generator.record_sends(day)  # as the demo does: the delivered audiences' effect on the next days
        advance_seconds += time.perf_counter() - t0
        seconds = _stage_seconds(runs)
        print(f"  floors for {day}")
        floors = Floors(day, runs, first=label == "first_day").measure()
        days[label] = {"wall": sum(wall for _, wall in runs.values()), "seconds": seconds, "floors": floors}

    usage = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result = {
        "customers": args.customers,
        "generate_seconds": _round(generate_seconds),
        "advance_seconds": _round(advance_seconds),
        "first_day_seconds": _round(days["first_day"]["wall"]),
        "next_day_seconds": _round(days["next_day"]["wall"]),
        "peak_rss_mb": round(max(usage) / 1024),  # ru_maxrss is in KiB on Linux
        "stages": {f"{label}.{stage}": _stage(figures["seconds"].get(stage, 0.0), figures["floors"].get(stage))
                   for label, figures in days.items() for stage in STAGES
                   if stage in figures["seconds"] or stage in figures["floors"]},
    }
    out = BUNDLE / ".data" / "reports" / f"bench_scale_{args.customers}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(result, parse_seconds, time.perf_counter() - started, out))


# ---- the retailer: generated once, kept, restored

def _clear(root: Path, names) -> None:
    for name in names:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for suffix in ("-wal", "-shm") if "source.db" in names else ():
        (root / f"source.db{suffix}").unlink(missing_ok=True)


def _copy_db(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite DB in WAL mode (the backup API, not the files)."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _keep(root: Path, pristine: Path) -> None:
    pristine.mkdir(parents=True)
    _copy_db(root / "source.db", pristine / "source.db")
    for name in RETAILER[1:]:
        if (root / name).exists():
            shutil.copytree(root / name, pristine / name)


def _restore(root: Path, pristine: Path) -> None:
    _clear(root, RETAILER)
    _copy_db(pristine / "source.db", root / "source.db")
    for name in RETAILER[1:]:
        if (pristine / name).exists():
            shutil.copytree(pristine / name, root / name)


# ---- the DAG runs and their task instances

def _run_dag(dag_id: str, day: dt.date) -> tuple[str, float, float]:
    """dag.test() of the DAG for the partition, as the demo runs it; returns the run id, the run's wall seconds and
    the seconds parsing the DAG files took."""
    from airflow.dag_processing.dagbag import DagBag

    from crosschannel.wiring.defaults import test_run

    t0 = time.perf_counter()
    bag = DagBag(str(BUNDLE / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = test_run(bag.dags[dag_id], day.isoformat())
    wall = time.perf_counter() - t0
    state, run_id = run.state, run.run_id
    print(f"  {dag_id:<22} {state:<8} {wall:7.1f} s")
    if state != "success":
        raise RuntimeError(f"{dag_id} for partition {day} ended {state}: see the task logs above")
    return run_id, wall, parse


def _task_instances(dag_id: str, run_id: str) -> list[tuple]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.start_date, TaskInstance.end_date,
                   TaskInstance.state).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    with create_session() as session:
        return list(session.execute(query).all())


def _stage_seconds(runs: dict[str, tuple[str, float]]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for dag_id, (run_id, wall) in runs.items():
        tasks = 0.0
        for task_id, _map_index, start, end, _state in _task_instances(dag_id, run_id):
            if start is None or end is None:  # skipped, or never ran
                continue
            stage = DAG_STAGE.get(dag_id) or STAGE_OF.get(task_id, "other")
            took = (end - start).total_seconds()
            seconds[stage] = seconds.get(stage, 0.0) + took
            tasks += took
        seconds["airflow"] = seconds.get("airflow", 0.0) + max(wall - tasks, 0.0)
    return seconds


def _xcom(dag_id: str, run_id: str, task_id: str) -> list:
    """The return values of a task's instances in the run (one per map index)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id)
    with create_session() as session:
        return [XComModel.deserialize_value(row) for row in session.scalars(query).all()]


# ---- the floors

class Floors:
    """Each stage's floor for one day: the same I/O with DuckDB, pyarrow or xgboost only."""

    def __init__(self, day: dt.date, runs: dict[str, tuple[str, float]], *, first: bool) -> None:
        self.day, self.runs, self.first = day, runs, first

    def measure(self) -> dict[str, float]:
        floors = {"extract": self.extract, "landing": self.landing, "trusted_merge": self.trusted_merge,
                  "gates": self.gates, "features": self.features, "scoring": self.scoring,
                  "activation": self.activation}
        if "propensity_training" in self.runs:
            floors |= {"training_datasets": self.training_datasets, "tuning_training": self.tuning_training,
                       "model_evaluation": self.model_evaluation, "recommenders": self.recommenders}
        seconds = {}
        for stage, floor in floors.items():
            with tempfile.TemporaryDirectory(prefix=f"floor-{stage}-") as tmp:
                t0 = time.perf_counter()
                floor(Path(tmp))
                seconds[stage] = time.perf_counter() - t0
        return seconds

    def plans(self, dag_id: str, task_id: str) -> list:
        run_id, _ = self.runs[dag_id]
        return [item for value in _xcom(dag_id, run_id, task_id) for item in (value or [])]

    # extract: SQLite -> Arrow -> CSV
    def extract(self, tmp: Path) -> None:
        import pyarrow.csv as pacsv

        from crosschannel.core import dms

        start = dt.datetime.combine(self.day, dt.time(0))
        queries = [(t, f"SELECT * FROM {t}", ()) for t in dms.mapped_tables()] if self.first else []
        queries.append(("cdc_log", "SELECT * FROM cdc_log WHERE commit_ts >= ? AND commit_ts < ?",
                        (str(start), str(start + dt.timedelta(days=1)))))
        with sqlite3.connect(_sqlite_path()) as con:
            for name, sql, params in queries:
                cursor = con.execute(sql, params)
                columns = [c[0] for c in cursor.description]
                pacsv.write_csv(_arrow_table(columns, cursor.fetchall()), tmp / f"{name}.csv")
        con.close()

    # landing: the partition's DMS files read (DuckDB), the landed Segment files read and written
    def landing(self, tmp: Path) -> None:
        import duckdb

        from crosschannel.core import paths, storage

        manifest = storage.read_json(storage.resolve(paths.dms_manifest(self.day)) / "manifest.json")
        base = Path(paths.dms_landing().path)
        with duckdb.connect() as con:
            for table, spec in manifest["tables"].items():
                files = [str(base / table / name) for name in (*spec.get("load_files", []), *spec["cdc_files"])]
                if files:
                    con.execute(f"SELECT count(*) FROM read_csv({files}, header = true, all_varchar = true, "
                                "union_by_name = true)").fetchall()
            segment = sorted(str(p) for p in Path(storage.resolve(paths.segment_landing(self.day)).path).glob("*.gz"))
            if segment:
                con.execute(f"COPY (SELECT * FROM read_ndjson_objects({segment})) TO '{tmp}/segment.json.gz' "
                            "(FORMAT json, COMPRESSION gzip)")

    # SQL jobs: inputs read, written to Parquet untransformed
    def jobs(self, jobs: list[dict], tmp: Path) -> None:
        import duckdb

        from crosschannel.core import sqljobs, storage

        with duckdb.connect() as con:
            for number, job in enumerate(jobs):
                for view, spec in sqljobs.job_inputs(job).items():
                    if spec["format"] == "dms_csv":
                        files = [p.removeprefix("file://") for p in spec["paths"]]
                        files = [f for f in files if Path(f).exists()]
                        reader = f"read_csv({files}, header = true, all_varchar = true, union_by_name = true)"
                    elif spec["format"] == "json_lines":
                        files = [p.removeprefix("file://") for p in spec["paths"]]
                        reader = f"read_ndjson_objects({files})"
                    else:
                        files = [f for url in spec["paths"] for f in _parquet_files(storage, url)]
                        reader = f"read_parquet({files}, union_by_name = true)"
                    if files:
                        con.execute(f"COPY (SELECT * FROM {reader}) TO '{tmp}/{number}-{view}.parquet' "
                                    "(FORMAT parquet)")

    def trusted_merge(self, tmp: Path) -> None:
        self.jobs([*self.plans("retail_trusted", "plan_merge"), *self.plans("retail_trusted", "plan_identities"),
                   *self.plans("retail_trusted", "plan_events")], tmp)

    def features(self, tmp: Path) -> None:
        self.jobs(self.plans("retail_trusted", "plan_derived"), tmp)

    # gates: one aggregate query per published partition
    def gates(self, tmp: Path) -> None:
        import duckdb

        from crosschannel.core import paths, storage

        partitions = [paths.trusted(p.name, self.day) for p in storage.zone("trusted").iterdir() if p.is_dir()]
        partitions.append(paths.features(self.day))
        with duckdb.connect() as con:
            for partition in partitions:
                files = _parquet_files(storage, storage.url_of(partition))
                if not files:
                    continue
                described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({files})").fetchall()
                aggregates = ["count(*)"]
                for name, kind, *_ in described:
                    aggregates.append(f'count("{name}")')
                    if not any(word in kind for word in ("STRUCT", "[]", "MAP", "UNION")):
                        aggregates += [f'min("{name}")', f'max("{name}")']
                con.execute(f"SELECT {', '.join(aggregates)} FROM read_parquet({files})").fetchall()

    def training_datasets(self, tmp: Path) -> None:
        import pyarrow.csv as pacsv

        from crosschannel.core.config import get_config

        self.jobs(self.plans("propensity_training", "plan_snapshots"), tmp)
        for model in get_config().models.specs:
            for number, split in enumerate(("train", "validation", "test")):
                pacsv.write_csv(_read_csv(_channel_csv(model, self.day, split)), tmp / f"{model}-{number}.csv",
                                pacsv.WriteOptions(include_header=False))

    # models: bare xgboost on the same matrices
    def tuning_training(self, tmp: Path) -> None:
        import xgboost as xgb

        from crosschannel.core import paths
        from crosschannel.core.config import get_config

        finals = {_model_of(c["OutputDataConfig"]["S3OutputPath"]): c["HyperParameters"]
                  for c in self.plans("propensity_training", "plan_training")}
        statics = {_model_of(c["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"]):
                   c["TrainingJobDefinition"]["StaticHyperParameters"]
                   for c in self.plans("propensity_training", "plan_tuning")}
        for model in get_config().models.specs:
            folder = Path(paths.model_output(model, self.day).path)
            trials = {t["TrainingJobName"]: t["TunedHyperParameters"]
                      for f in folder.glob("*.tuning.json") for t in json.loads(f.read_text())["TrainingJobs"]}
            for artifact in sorted(folder.glob("*/output/model.tar.gz")):
                job = artifact.parent.parent.name
                hps = {**statics.get(model, {}), **trials[job]} if job in trials else finals[model]
                rounds = _booster(artifact, tmp).num_boosted_rounds()
                dtrain, dvalid = (_dmatrix(_channel_csv(model, self.day, split)) for split in ("train", "validation"))
                xgb.train(_xgb_params(hps), dtrain, num_boost_round=rounds, evals=[(dvalid, "validation")],
                          verbose_eval=False)

    def model_evaluation(self, tmp: Path) -> None:

        for artifact in self.plans_flat("propensity_training", "train_model"):
            model = _model_of(artifact)
            booster = _booster(Path(artifact.removeprefix("file://")), tmp)
            if booster is None:
                continue
            booster.predict(_dmatrix(_channel_csv(model, self.day, "test"), booster))

    def plans_flat(self, dag_id: str, task_id: str) -> list:
        run_id, _ = self.runs[dag_id]
        return _xcom(dag_id, run_id, task_id)

    def recommenders(self, tmp: Path) -> None:
        self.read_trusted(tmp, ("orders", "order_lines"), None)

    def read_trusted(self, tmp: Path, tables: tuple[str, ...], extra: list[str] | None) -> None:
        import duckdb

        from crosschannel.core import paths, storage

        urls = [storage.url_of(paths.trusted(t, self.day)) for t in tables] + (extra or [])
        with duckdb.connect() as con:
            for number, url in enumerate(urls):
                files = _parquet_files(storage, url)
                if not files:
                    continue
                if extra is None:
                    con.sql(f"SELECT * FROM read_parquet({files})").to_arrow_table()
                else:
                    con.execute(f"COPY (SELECT * FROM read_parquet({files})) TO '{tmp}/{number}.csv' "
                                "(FORMAT csv, HEADER true)")

    def scoring(self, tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        from crosschannel.core import paths, storage

        for plan in self.plans("propensity_scoring", "plan_transforms"):
            model_data = plan["model_config"]["PrimaryContainer"]["ModelDataUrl"]
            model = plan["model"]
            booster = _booster(Path(model_data.removeprefix("file://")), tmp)
            given = storage.resolve(paths.scores(model, self.day, "input"))
            for number, csv in enumerate(sorted(Path(given.path).glob("*.csv"))):
                table = out = _read_csv(csv)
                if booster is not None:  # else a baseline champion: no booster, the input read and written back
                    matrix = _dmatrix_of(table.drop_columns([table.column_names[0]]), booster)
                    probability = booster.predict(matrix)
                    contributions = booster.predict(matrix, pred_contribs=True, approx_contribs=True)
                    out = pa.table({"customer_id": table.column(0), "probability": probability,
                                    **{f"c{i}": contributions[:, i] for i in range(contributions.shape[1])}})
                pacsv.write_csv(out, tmp / f"{model}-{number}.csv", pacsv.WriteOptions(include_header=False))

    def activation(self, tmp: Path) -> None:
        from crosschannel.core import paths, storage
        from crosschannel.core.config import get_config

        scores = [storage.url_of(paths.scores(m, self.day, "scores")) for m in get_config().models.specs]
        self.read_trusted(tmp, ("customers", "orders", "order_lines"),
                          [*scores, storage.url_of(paths.features(self.day))])


def _sqlite_path() -> str:
    from crosschannel.core.config import get_config

    return get_config().source.sqlalchemy_url.removeprefix("sqlite:///")


def _arrow_table(columns: list[str], rows: list[tuple]):
    import pyarrow as pa

    arrays = []
    for values in zip(*rows, strict=True) if rows else [[] for _ in columns]:
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # SQLite's mixed storage classes in a column
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.table(dict(zip(columns, arrays, strict=True)))


def _parquet_files(storage, url: str) -> list[str]:
    path = storage.resolve(storage.location(url))
    local = Path(path.path)
    if local.is_file():
        return [str(local)]
    return sorted(str(p) for p in local.glob("*.parquet")) if local.is_dir() else []


def _channel_csv(model: str, day, split: str) -> Path:
    """The CSV file of a model's training split (the committed version of its SQL job's output)."""
    from crosschannel.core import paths, storage

    (found,) = Path(storage.resolve(paths.dataset(model, day) / split).path).glob("*.csv")
    return found


def _read_csv(path: Path):
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True))


def _dmatrix_of(table, booster=None):
    import numpy as np
    import xgboost as xgb

    matrix = np.column_stack([c.to_numpy(zero_copy_only=False).astype("float64") for c in table.columns])
    if booster is None:
        return matrix
    width = booster.num_features()
    if matrix.shape[1] < width:  # train.py may append columns (BG/NBD) it computes itself: zeros stand in
        matrix = np.hstack([matrix, np.zeros((matrix.shape[0], width - matrix.shape[1]))])
    return xgb.DMatrix(matrix[:, :width], feature_names=booster.feature_names)


def _dmatrix(path: Path, booster=None):
    """A dataset CSV (label first, no header) as a DMatrix: with `booster`, its features only."""
    import xgboost as xgb

    table = _read_csv(path)
    features = table.drop_columns([table.column_names[0]])
    if booster is not None:
        return _dmatrix_of(features, booster)
    return xgb.DMatrix(_dmatrix_of(features), label=table.column(0).to_numpy())


def _booster(artifact: Path, tmp: Path):
    import tarfile

    import xgboost as xgb

    folder = tmp / f"model-{abs(hash(str(artifact)))}"
    with tarfile.open(artifact) as tar:
        tar.extractall(folder, filter="data")
    model = folder / "xgboost-model.json"
    return xgb.Booster(model_file=str(model)) if model.exists() else None  # a baseline champion holds none


def _model_of(location: str) -> str:
    """The model of an ml-zone location: <root>/ml/<model>/..."""
    parts = location.rstrip("/").split("/")
    return parts[len(parts) - 1 - parts[::-1].index("ml") + 1]


def _xgb_params(hps: dict) -> dict:
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist"}
    for key, value in hps.items():
        if key.startswith("sagemaker_") or key in ("num_round", "early_stopping_rounds"):
            continue
        for kind in (int, float):
            try:
                params[key] = kind(value)
                break
            except (TypeError, ValueError):
                continue
        else:
            params[key] = value
    return params


# ---- the result

def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _stage(seconds: float, floor: float | None) -> dict:
    return {"seconds": round(seconds, 2), "floor_seconds": None if floor is None else round(floor, 3),
            "ratio": round(seconds / floor, 1) if floor else None}


def _table(result: dict, parse_seconds: float, wall: float, out: Path) -> str:
    def cell(value, spec):
        return f"{'-':>{spec.split('.')[0]}}" if value is None else format(value, spec)

    lines = ["", f"{result['customers']:,} customers: generate {cell(result['generate_seconds'], '.1f')} s, "
             f"advance {result['advance_seconds']:.1f} s, first day {result['first_day_seconds']:.1f} s, "
             f"next day {result['next_day_seconds']:.1f} s (DAG parsing {parse_seconds:.1f} s apart), "
             f"peak RSS {result['peak_rss_mb']:,} MB; wall {wall:.0f} s",
             f"{'stage':<30}{'seconds':>10}{'floor':>10}{'ratio':>8}"]
    for stage, figures in result["stages"].items():
        lines.append(f"{stage:<30}{figures['seconds']:>10.2f}{cell(figures['floor_seconds'], '10.2f')}"
                     f"{cell(figures['ratio'], '8.1f')}")
    lines.append(f"JSON: {out}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
