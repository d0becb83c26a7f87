"""Benchmark training and scoring against bare xgboost on the same matrices.

    PYTHONPATH=plugins .venv/bin/python bench/bench_models.py --customers 100000 [--trials 4] [--max-rounds 300]

Needs the trusted partition of bench/bench_trusted.py at that size (.data/bench/generator-N/). For the churn
model at partition 2026-11-01 it times: the feature snapshots of the temporal split (SQL jobs), the datasets,
the local tuning job (N trials), the final training job (include/sagemaker/train.py in the SageMaker
layout: subprocess, CSV parsing, model.tar.gz), and the batch transform of every customer (inference.py with
DataProcessing, reason codes included). The floors are bare xgboost on the same matrices already in memory:
`xgb.train` with the chosen hyperparameters and the final job's number of rounds, `Booster.predict`, and
`Booster.predict(pred_contribs=True, approx_contribs=True)` (the reason codes inference.py computes).
Prints one JSON line and writes models-result.json beside the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

from benchkit import Timer, retailer_root, use_retailer  # first: it puts plugins/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--max-rounds", type=int, default=300, help="cap on boosting rounds (models.max_rounds)")
    args = parser.parse_args()
    root = retailer_root(args.customers)
    use_retailer(root, needs="trusted/orders/dt=2026-11-01/_SUCCESS", clean=("ml",),
                 run_first=f"bench/bench_trusted.py --customers {args.customers}",
                 CROSSCHANNEL__MODELS__MAX_TRIALS=str(args.trials),
                 CROSSCHANNEL__MODELS__MAX_ROUNDS=str(args.max_rounds))
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from crosschannel.core import paths, sqljobs, storage
    from crosschannel.core import sagemaker as sagemaker_jobs
    from crosschannel.local import sagemaker as local_sagemaker
    from crosschannel.stages.models import datasets as model_datasets
    from crosschannel.stages.models import jobs as model_jobs

    day, model = dt.date(2026, 11, 1), "churn"
    timed = Timer()
    timings = timed.seconds

    timed("snapshots", lambda: [sqljobs.run_local(job) for job in model_datasets.plan_snapshots(day)])
    timed("dataset_jobs", lambda: [sqljobs.run_local(job) for job in model_datasets.plan_datasets(day)])
    datasets = timed("datasets", model_datasets.check_datasets, day)
    (tuning,) = model_jobs.plan_tuning(day, [model])
    timed("tuning", local_sagemaker.run_tuning_job, tuning)
    (training,) = model_jobs.plan_final_training(day, [tuning], [model])
    job = timed("training_job", local_sagemaker.run_training_job, training)

    def load(split):
        (csv,) = storage.resolve(paths.dataset(model, day) / split).glob("*.csv")
        frame = pd.read_csv(csv.path, header=None)
        return frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1:].to_numpy(dtype="float64")

    (y_train, x_train), (y_valid, x_valid) = load("train"), load("validation")
    handlers = sagemaker_jobs.load_handlers(sagemaker_jobs.upload_source_dir())
    booster = sagemaker_jobs.load_model(handlers, job["ModelArtifacts"]["S3ModelArtifacts"])
    rounds = booster.num_boosted_rounds()
    hps = {k: v for k, v in training["HyperParameters"].items()
           if k not in ("sagemaker_program", "sagemaker_submit_directory", "num_round", "early_stopping_rounds")}
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist",
              **{k: float(v) if "." in v else int(v) for k, v in hps.items()}}
    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=list(booster.feature_names))
    dvalid = xgb.DMatrix(x_valid, label=y_valid, feature_names=list(booster.feature_names))
    started = time.perf_counter()
    xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dvalid, "validation")], verbose_eval=False)
    timings["bare_training"] = round(time.perf_counter() - started, 2)

    # Scoring: every customer of the partition's features, as the scoring DAG does.
    features = sqljobs.read_parquet([storage.url_of(storage.zone("features", "customer", f"dt={day}"))]).to_pandas()
    names = list(booster.feature_names)
    folder = storage.zone("ml", model, "scores", f"dt={day}")
    with storage.committing(folder / "input", marker=False) as staging, (staging / "part-00000.csv").open("wb") as out:
        sagemaker_jobs.write_csv(features[["customer_id", *names]].astype(dict.fromkeys(names, "float64")), out)
    model_config = sagemaker_jobs.model_config("bench", job["ModelArtifacts"]["S3ModelArtifacts"],
                                               sagemaker_jobs.upload_source_dir())
    transform = sagemaker_jobs.transform_config("bench", "bench", storage.url_of(folder / "input"),
                                                storage.url_of(folder / "output"), len(names), 4)
    timed("transform_job", local_sagemaker.run_transform_job, model_config, transform)
    matrix = xgb.DMatrix(features[names].astype("float64").to_numpy(), feature_names=names)
    started = time.perf_counter()
    booster.predict(matrix)
    timings["bare_predict"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    booster.predict(matrix, pred_contribs=True, approx_contribs=True)  # what inference.py computes
    timings["bare_predict_contribs"] = round(time.perf_counter() - started, 3)

    result = {
        "customers": args.customers, "model": model, "trials": args.trials, "datasets": datasets[model],
        "train_rows": len(y_train), "scored_rows": len(features), "rounds": rounds,
        "seconds": timings,
        "training_ratio": round(timings["training_job"] / timings["bare_training"], 2),
        "scoring_ratio_vs_predict": round(timings["transform_job"] / max(timings["bare_predict"], 1e-3), 1),
        "scoring_ratio_vs_predict_with_contributions": round(
            timings["transform_job"] / max(timings["bare_predict_contribs"], 1e-3), 1),
        "mean_probability": float(np.mean(booster.predict(matrix))),
    }
    (root / "models-result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
