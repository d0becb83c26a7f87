"""Customer features as of a day, and their labels: include/sql/trusted/customer_features.sql bound to a day."""

from __future__ import annotations

import datetime as dt
import json

from crosschannel import engines

WINDOWS = (30, 90, 365)
LABEL_HORIZONS = (30, 90)
CHANNELS = ("store", "web", "app")


def _stamp(day: dt.date) -> str:
    return f"{day.isoformat()} 00:00:00"


def features_sql(as_of: dt.date, data_end: dt.date) -> str:
    """The features of `as_of` from the state at the end of `data_end`; labels only where their window ended."""
    end = as_of + dt.timedelta(days=1)
    return engines.render(
        "trusted/customer_features.sql",
        as_of=as_of.isoformat(),
        as_of_end=_stamp(end),
        windows=WINDOWS,
        channels=CHANNELS,
        since={days: _stamp(end - dt.timedelta(days=days)) for days in WINDOWS},
        until={days: _stamp(end + dt.timedelta(days=days)) for days in LABEL_HORIZONS},
        complete={days: as_of + dt.timedelta(days=days) <= data_end for days in LABEL_HORIZONS},
    )


INPUTS = ("customers", "orders", "returns")


def candidate_dir(day: dt.date):
    from crosschannel import storage

    return storage.partition_dir("staging", "features", "customer", day=day.isoformat())


def final_dir(day: dt.date):
    from crosschannel import storage

    return storage.partition_dir("features", "customer", day=day.isoformat())


def plan_features(day: dt.date) -> dict:
    """The partition's features job; on aws the SQL is uploaded and the inputs are the trusted partitions."""
    from crosschannel import storage, trusted
    from crosschannel.config import get_config

    job = {"partition": day.isoformat(), "output_path": storage.url_of(candidate_dir(day))}
    if get_config().target == "aws":
        sql_path = trusted.upload_sql(day, "customer_features.sql", features_sql(day, day))
        inputs = {name: {"format": "parquet", "paths": [storage.url_of(trusted.final_dir(name, day))]}
                  for name in INPUTS}
        job["script_args"] = {"--sql_path": storage.url_of(sql_path), "--inputs": json.dumps(inputs),
                              "--output_path": job["output_path"]}
    return job


def compute_features(day: dt.date) -> int:
    """The local target's features job: DuckDB over the trusted partitions, written as the gate's candidate."""
    import pyarrow.parquet as pq

    from crosschannel import storage, trusted

    inputs = {name: trusted.read_partition(trusted.final_dir(name, day)) for name in INPUTS}
    table = engines.run_duckdb(features_sql(day, day), inputs)
    with storage.committing(candidate_dir(day)) as staging, (staging / "part-00000.parquet").open("wb") as handle:
        pq.write_table(table, handle)
    return table.num_rows


def gate_and_publish_features(day: dt.date) -> dict:
    """The features suite on the candidate; published to <root>/features/customer/dt=... only if it passes."""
    from crosschannel import gates, storage, trusted

    candidate = candidate_dir(day)
    if not storage.is_committed(candidate):
        raise FileNotFoundError(f"{storage.url_of(candidate)}: no features were computed for {day}")
    frame = trusted.read_partition(candidate).to_pandas()
    customers = trusted.read_partition(trusted.final_dir("customers", day)).to_pandas()
    previous = final_dir(day - dt.timedelta(days=1))
    previous_rows = trusted.rows_in(previous) if storage.is_committed(previous) else None
    run = gates.GateRun(day, docs_name="data_docs_features")
    result = run.validate("features_customer", frame, previous_rows,
                          keys_of=lambda table, key: customers[key].dropna().unique())
    gates.record(result)
    docs = run.publish_docs()
    gates.enforce([result])
    storage.promote(candidate, final_dir(day))
    return {"partition": day.isoformat(), "rows": len(frame), "gate": result.success, "data_docs": docs}
