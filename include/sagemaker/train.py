"""XGBoost training entry point in SageMaker script mode (the XGBoost framework image, or local disk).

SageMaker runs `python train.py --<hyperparameter> <value> ...` with:
    SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION   folders of CSV files: label first, no header, empty = missing
                                              (a manifest.json beside them names the feature columns)
    SM_MODEL_DIR                              where the model goes (SageMaker tars it to model.tar.gz)
    SM_OUTPUT_DATA_DIR                        extra outputs (feature importance)
    SM_HPS                                    the hyperparameters as JSON (used when no arguments are given)
It prints one line per boosting round and, last, the best round's metrics in xgboost's evaluation format
(`[<round>]<TAB>validation-logloss:<value><TAB>validation-auc:<value>`), which the XGBoost image's built-in
metric `validation:auc` reads (the first-party image refuses custom MetricDefinitions for tuning); the tuner
takes the last value it sees. Python 3.8 syntax and library calls only: the image's Python (a test checks it).
The model is trained with early stopping on validation AUC and saved as xgboost-model.json (feature names
inside) with features.json. When the channel's manifest names BG/NBD inputs (`bgnbd`: the frequency, recency and
age columns and the label's horizon), BG/NBD is fitted on the training rows and its P(alive), expected purchases
and P(no purchase) in the horizon join the features (inference.py derives them the same way when scoring).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

HYPERPARAMETERS = {  # name: type; anything else SageMaker passes (sagemaker_program, ...) is ignored
    "max_depth": int, "eta": float, "min_child_weight": float, "subsample": float, "colsample_bytree": float,
    "lambda": float, "alpha": float, "gamma": float, "num_round": int, "early_stopping_rounds": int,
    "seed": int, "nthread": int, "scale_pos_weight": float,
}
DEFAULTS = {"max_depth": 5, "eta": 0.1, "num_round": 300, "early_stopping_rounds": 25, "seed": 7}


def hyperparameters(argv: list[str], environ) -> dict:
    parser = argparse.ArgumentParser()
    for name, kind in HYPERPARAMETERS.items():
        parser.add_argument(f"--{name}", type=kind)
    given, _ = parser.parse_known_args(argv)
    values = {k: v for k, v in vars(given).items() if v is not None}
    if not values and environ.get("SM_HPS"):
        values = {k: HYPERPARAMETERS[k](v) for k, v in json.loads(environ["SM_HPS"]).items() if k in HYPERPARAMETERS}
    return {**DEFAULTS, **values}


def read_channel(folder: str):
    """(labels, features, manifest) of a channel's CSV files (the manifest names the features)."""
    import pandas as pd

    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    if not files:
        raise SystemExit(f"train.py: no CSV files in channel {folder}")
    frame = pd.concat([pd.read_csv(f, header=None) for f in files], ignore_index=True)
    manifest = os.path.join(folder, "manifest.json")
    names, described = None, {}
    if os.path.exists(manifest):
        with open(manifest) as handle:
            described = json.load(handle)
        names = described["features"]
    if names is not None and len(names) != frame.shape[1] - 1:
        raise SystemExit(f"train.py: {manifest} names {len(names)} features, the CSV files have {frame.shape[1] - 1}")
    return frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1:].to_numpy(dtype="float64"), {**described, "features": names}


def with_bgnbd(manifest: dict, x_train, x_valid):
    """The BG/NBD columns appended (fitted on the training rows) and their spec for features.json, or the
    matrices as they are when the manifest names no BG/NBD inputs."""
    import numpy as np

    from inference import BGNBD_COLUMNS, bgnbd_columns, bgnbd_fit, bgnbd_inputs

    spec = manifest.get("bgnbd")
    names = manifest["features"]
    if not spec or names is None:
        return x_train, x_valid, names, None
    fitted = {"inputs": spec["inputs"], "horizon_days": spec["horizon_days"],
              "params": bgnbd_fit(*bgnbd_inputs(x_train, names, spec["inputs"]))}
    derived = [np.column_stack([x, bgnbd_columns(x, names, fitted)]) for x in (x_train, x_valid)]
    return derived[0], derived[1], [*names, *BGNBD_COLUMNS], fitted


def main(argv: list[str], environ=os.environ) -> dict:
    import xgboost as xgb

    hps = hyperparameters(argv, environ)
    y_train, x_train, manifest = read_channel(environ["SM_CHANNEL_TRAIN"])
    y_valid, x_valid, _ = read_channel(environ["SM_CHANNEL_VALIDATION"])
    x_train, x_valid, names, bgnbd = with_bgnbd(manifest, x_train, x_valid)
    train = xgb.DMatrix(x_train, label=y_train, feature_names=names)
    valid = xgb.DMatrix(x_valid, label=y_valid, feature_names=names)
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist",
              **{k: v for k, v in hps.items() if k not in ("num_round", "early_stopping_rounds")}}
    booster = xgb.train(params, train, num_boost_round=hps["num_round"], evals=[(valid, "validation")],
                        early_stopping_rounds=hps["early_stopping_rounds"], verbose_eval=True)
    best = booster.best_iteration
    booster = booster[: best + 1]  # keep the trees up to the best round only
    scores = booster.eval(valid, "validation")  # "[0]\tvalidation-logloss:...\tvalidation-auc:..."
    metrics = dict(item.split(":") for item in scores.split("\t")[1:])
    auc, logloss = float(metrics["validation-auc"]), float(metrics["validation-logloss"])
    model_dir = environ["SM_MODEL_DIR"]
    os.makedirs(model_dir, exist_ok=True)
    booster.save_model(os.path.join(model_dir, "xgboost-model.json"))
    with open(os.path.join(model_dir, "features.json"), "w") as handle:
        card = {"kind": "xgboost", "features": manifest["features"], "hyperparameters": hps, "best_iteration": best}
        json.dump({**card, "bgnbd": bgnbd} if bgnbd else card, handle, indent=2)
    output_dir = environ.get("SM_OUTPUT_DATA_DIR")
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "feature_importance.json"), "w") as handle:
            json.dump(booster.get_score(importance_type="gain"), handle, indent=2, sort_keys=True)
    # last, the best round in xgboost's own evaluation format: the image's built-in metric validation:auc (regex
    # `.*\[[0-9]+\].*#011validation-auc:(\S+)`, #011 being the tab in CloudWatch) takes the last value it sees
    print(f"[{best}]\tvalidation-logloss:{logloss:.6f}\tvalidation-auc:{auc:.6f}", flush=True)
    return {"validation_auc": auc, "validation_logloss": logloss, "best_iteration": best}


if __name__ == "__main__":
    main(sys.argv[1:])
