"""A Personalize batch inference job, run locally: the same input file, the same `<input>.out` output.

`run_job(day, job_input, job_output, recipe=...)` reads the job's input (JSON lines of userId or itemId, as
`CreateBatchInferenceJob`'s `jobInput` names them), fits the recipe on the trusted zone of `day`, applies the
filters and writes `<job_output>/<input file name>.out` (the folder is committed whole: a reader sees the old
output or the new one). Like Personalize, a user without history gets the popular items of the shop-wide
category mix, an item outside the catalogue gets the popular items; every input line gets an output line.

`write_input` writes the input file from customer or product ids; `default_folders` is where a day's job keeps
its input and output when the caller has no other place: <root>/ml/<recipe>/scores/dt=D/{input,output}/.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError
from crosschannel.stages.recommendations import batch_format, data, filters
from crosschannel.stages.recommendations.batch_format import ITEM, USER
from crosschannel.stages.recommendations.model import (
    DEFAULTS,
    POPULARITY,
    RECIPES,
    SIMILAR_ITEMS,
    USER_PERSONALIZATION,
    Model,
    Settings,
    catalogue,
    fit,
    index_of,
    top,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

NUM_RESULTS = 25  # Personalize's default numResults for a batch inference job
CELLS_PER_CHUNK = 4_000_000  # rows x items scored at once: memory stays flat however many customers
INPUT_KEY = {USER_PERSONALIZATION: USER, POPULARITY: USER, SIMILAR_ITEMS: ITEM}


def _chunks(n: int, width: int):
    step = max(1, CELLS_PER_CHUNK // max(width, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def rank_users(model: Model, masks: filters.Filters, customer_ids: np.ndarray, k: int,
               recipe: str = USER_PERSONALIZATION,
               stock_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k best items per customer after the filters: product ids (-1 padded) and scores (NaN padded).
    `stock_rows`: per customer, the stock row that applies (filters.Filters.stock_rows; default: the home store's)."""
    ids = np.empty((customer_ids.size, min(k, model.items.size)), dtype="int64")
    scores = np.empty(ids.shape)
    for part in _chunks(customer_ids.size, model.items.size):
        chunk = customer_ids[part]
        raw = (model.user_scores(model.rows(chunk)) if recipe == USER_PERSONALIZATION
               else model.popularity_scores(chunk.size))
        rows = None if stock_rows is None else stock_rows[part]
        columns, scores[part] = top(raw, masks.blocked(chunk, rows), k)
        ids[part] = np.where(columns >= 0, model.items[np.maximum(columns, 0)], -1)
    return ids, scores


def rank_items(model: Model, masks: filters.Filters, product_ids: np.ndarray, k: int,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar items per product (never itself; out-of-stock items filtered); `exclude` adds a
    per-row mask (a customer's filters, in the evaluation)."""
    ids = np.empty((product_ids.size, min(k, model.items.size)), dtype="int64")
    scores = np.empty(ids.shape)
    rows = index_of(model.items, product_ids)
    for part in _chunks(product_ids.size, model.items.size):
        chunk = rows[part]
        blocked = np.broadcast_to(masks.unavailable(), (chunk.size, model.items.size)).copy()
        blocked[np.flatnonzero(chunk >= 0), chunk[chunk >= 0]] = True
        if exclude is not None:
            blocked |= exclude[part]
        columns, scores[part] = top(model.similar_scores(chunk), blocked, k)
        ids[part] = np.where(columns >= 0, model.items[np.maximum(columns, 0)], -1)
    return ids, scores


def _lines(key: str, given: list[str], ids: np.ndarray, scores: np.ndarray, with_scores: bool):
    for value, row, row_scores in zip(given, ids, scores, strict=True):
        keep = row >= 0
        yield batch_format.output_line(key, value, row[keep].tolist(),
                                       row_scores[keep].tolist() if with_scores else None)


def _as_ids(given: list[str]) -> np.ndarray:
    """Input itemIds as product ids; one that is not a number is unknown (-1)."""
    return np.array([int(v) if v.strip().lstrip("-").isdigit() else -1 for v in given], dtype="int64")


def _customer_ids(trusted: data.Trusted, given: list[str]) -> np.ndarray:
    """Input userIds (Personalize's USER_ID: the retailer's external_id, else the customer id) as customer ids; a
    user unknown to the trusted customers is -1."""
    known = dict(zip(trusted.customers["user_id"], trusted.customers["customer_id"].astype("int64"), strict=True))
    return np.array([known.get(v, -1) for v in given], dtype="int64")


def run_job(day: dt.date, job_input: ObjectStoragePath, job_output: ObjectStoragePath, *,
            recipe: str = USER_PERSONALIZATION, num_results: int = NUM_RESULTS,
            exclude_days: int = filters.EXCLUDE_BOUGHT_DAYS, online_stores: Iterable[int] | None = None,
            settings: Settings = DEFAULTS, trusted: data.Trusted | None = None,
            trained_through: dt.date | None = None, check_stock: bool = True) -> dict:
    """Run a batch inference job of `recipe`: the model fitted on the trusted zone of `trained_through` (the
    solution version's partition; default `day`), the filters as of `day`; one output line per input line, in order,
    in `<job_output>/<input name>.out`. A line's filterValues LOCATIONS ("S<store id>", "ONLINE") choose the stock
    it is filtered on (else the customer's home store and online). What it did, like DescribeBatchInferenceJob."""
    started = time.monotonic()
    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r}: expected one of {list(RECIPES)}")
    if not 1 <= num_results <= 500:
        raise ValueError(f"num_results {num_results}: Personalize allows 1 to 500")
    key, given, values = batch_format.read_input(job_input)
    if key != INPUT_KEY[recipe]:
        raise DataError(f"{storage.url_of(job_input)}: {recipe} takes {INPUT_KEY[recipe]} lines, the file holds "
                        f"{key} lines")
    trusted = trusted or data.read(day)
    trained = trusted if trained_through in (None, day) else data.read(trained_through)
    model = fit(trained, catalogue(trained), data.end_of(trained_through or day), settings)
    masks = filters.build(trusted, model.items, data.end_of(day), exclude_days=exclude_days,
                          online_stores=online_stores, check_stock=check_stock)
    stock_rows = masks.stock_rows(values) if any(values) else None
    ranked = (rank_items(model, masks, _as_ids(given), num_results) if key == ITEM
              else rank_users(model, masks, _customer_ids(trusted, given), num_results, recipe, stock_rows))
    with storage.committing(job_output, marker=False) as staging:
        lines = batch_format.write_lines(staging / batch_format.output_name(job_input),
                                         _lines(key, given, *ranked, with_scores=recipe == USER_PERSONALIZATION))
    output = job_output / batch_format.output_name(job_input)
    short = int(((ranked[0] >= 0).sum(axis=1) < min(num_results, model.items.size)).sum())
    result = {"recipe": recipe, "partition": day.isoformat(), "status": "ACTIVE",
              "trained_through": (trained_through or day).isoformat(),
              "jobInput": storage.url_of(job_input), "jobOutput": storage.url_of(job_output),
              "output": storage.url_of(output), "lines": lines, "num_results": num_results,
              "short_lists": short, "catalogue": int(model.items.size), "exclude_bought_days": exclude_days,
              "seconds": round(time.monotonic() - started, 3)}
    log.info("local batch inference %s for %s: %d lines in %s", recipe, day, lines, result["output"])
    return result


def run_request(params: dict, *, recipe: str, trained_through: dt.date, day: dt.date) -> dict:
    """A CreateBatchInferenceJob request run locally, as Personalize runs it: the input and output locations, the
    number of results and the filter (with filterArn: the stock filter, its LOCATIONS from each line; without:
    none) from the request. The recent-purchase window is not a Personalize filter (crosschannel.stages.activation
    .recommended applies it), so none here. The local target's `recommend` task and the aws tests' cloud run it."""
    return run_job(day, storage.location(params["jobInput"]["s3DataSource"]["path"]),
                   storage.location(params["jobOutput"]["s3DataDestination"]["path"].rstrip("/")),
                   recipe=recipe, num_results=params["numResults"], exclude_days=0,
                   online_stores=get_config().recommendations.online_stores or None,
                   trained_through=trained_through, check_stock="filterArn" in params)


def run_plan(plan: dict) -> dict:
    """The local target's batch inference of a plan of crosschannel.stages.activation.recommended."""
    return run_request(plan["requests"][0]["params"], recipe=plan["recipe"],
                       trained_through=dt.date.fromisoformat(plan["trained_through"]),
                       day=dt.date.fromisoformat(plan["partition"]))


def default_folders(recipe: str, day: dt.date) -> tuple[ObjectStoragePath, ObjectStoragePath]:
    """A day's job input and output folders: <root>/ml/<recipe>/scores/dt=D/input/ and .../output/."""
    return paths.scores(recipe, day, "input"), paths.scores(recipe, day, "output")


def write_input(folder: ObjectStoragePath, recipe: str, ids: Iterable, name: str | None = None) -> ObjectStoragePath:
    """The job's input file in `folder` (committed whole): a userId line per customer id for the user recipes, an
    itemId line per product id for similar items. Its path."""
    key = INPUT_KEY[recipe]
    name = name or ("users.json" if key == USER else "items.json")
    with storage.committing(folder, marker=False) as staging:
        batch_format.write_input(staging / name, key, ids)
    return folder / name
