"""The day's recommendations for the audiences' members: a batch inference job per recipe over the champion
solution version (crosschannel.stages.recommendations.solutions), and its output joined to the catalogue.

    <root>/activation/recommendations/dt=D/attempt=A/users/users.json        job input: one {"userId"} line per member
    <root>/activation/recommendations/dt=D/attempt=A/users/output/           job output: users.json.out
    <root>/activation/recommendations/dt=D/attempt=A/items/items.json        job input: the catalogue's products
    <root>/activation/recommendations/dt=D/attempt=A/items/output/           job output: items.json.out
    <root>/activation/recommendations/dt=D/members/        customer_id, rank, product_id, name, category, price, score
    <root>/activation/recommendations/dt=D/similar_items/  product_id, rank, similar_product_id, name, category,
                                                           price, score  (the website-facing export: README)

Who gets a list: every member of the day's audiences, treatment and control, who opted in to at least one channel
(consent.reachable). Control members' lists are never sent (consent.deliverable_recommendations): the campaign
readout compares what each group bought of its own list. The jobs run only when the run sends (a backfill or an
older partition runs none; its files carry what an earlier attempt of the day committed, if any), and each attempt
has its own input and output.

Filters: Personalize's stock filter (solutions.STOCK_EXPRESSION) takes each input line's LOCATIONS (the member's
home store and ONLINE; ONLINE for the catalogue's lines). Nothing bought in the last
`recommendations.exclude_bought_days` days is not a Personalize filter (interaction filters have no time window):
the jobs ask for `OVERFETCH` more items and `commit` drops those, keeping `recommendations.per_member`.

The jobs' requests are CreateBatchInferenceJob as Personalize takes them (validated against the botocore model);
on the local target the same plan runs crosschannel.stages.recommendations.batch over the same files, so every
reader parses Personalize's output format with batch_format.read_output.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from crosschannel.core import paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.partition import run_hash
from crosschannel.core.source_settings import NEEDS
from crosschannel.stages.activation import audiences, consent, outbox
from crosschannel.stages.recommendations import batch_format, filters, solutions
from crosschannel.stages.recommendations.batch import INPUT_KEY
from crosschannel.stages.recommendations.model import SIMILAR_ITEMS, USER_PERSONALIZATION

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

RECOMMENDATIONS = "recommendations"  # the activation zone's folder (not a destination: nothing leaves from it)
SIMILAR_RESULTS = 10  # similar items per product in the website-facing export
OVERFETCH = 20  # extra items per member, for those bought recently (dropped by `commit`)
JOBS = {"users": USER_PERSONALIZATION, "items": SIMILAR_ITEMS}  # job name: recipe


def members_dir(day: dt.date):
    return paths.activation(RECOMMENDATIONS, day, "members")


def similar_dir(day: dt.date):
    return paths.activation(RECOMMENDATIONS, day, "similar_items")


def recipients(day: dt.date, profile: pd.DataFrame) -> list[int]:
    """The customer ids that get a list: members of any audience (treatment or control) reachable on a channel."""
    members = audiences.read(day)
    reachable = profile.loc[consent.reachable(profile), "customer_id"]
    return sorted(set(members["customer_id"].astype("int64")) & set(reachable.astype("int64")))


def user_ids(day: dt.date) -> dict[int, str]:
    """Each trusted customer's id as it leaves (Personalize's USER_ID): the retailer's external_id, else the id."""
    customers = sqljobs.read_partition(paths.trusted("customers", day)).to_pandas()
    ids = customers["customer_id"].astype("int64")
    return dict(zip(ids, customers["external_id"].fillna(ids.astype(str)), strict=True))


def _job_name(recipe: str, day: dt.date, attempt: str) -> str:
    """Unique per delivery attempt (a cleared run is a new attempt with new folders: a new job, never the first
    attempt's job resumed by name); a task retry within the attempt resumes its job."""
    short = "user" if recipe == USER_PERSONALIZATION else "similar"
    return f"crosschannel-{short}-{day:%Y%m%d}-{run_hash(attempt)}"


def batch_request(recipe: str, champion: dict, day: dt.date, attempt: str, job_input, job_output,
                  num_results: int) -> dict:
    """CreateBatchInferenceJob of `recipe`'s champion solution version, validated."""
    params = {"jobName": _job_name(recipe, day, attempt), "solutionVersionArn": champion["solution_version_arn"],
              "numResults": num_results,
              "jobInput": {"s3DataSource": {"path": storage.url_of(job_input)}},
              "jobOutput": {"s3DataDestination": {"path": storage.url_of(job_output) + "/"}},
              "roleArn": get_config().activation.personalize.role_arn}
    if champion.get("filter_arn"):
        params["filterArn"] = champion["filter_arn"]
    return outbox.validate("personalize", "CreateBatchInferenceJob", params)


def plan(day: dt.date, decision: dict, profile: pd.DataFrame, catalogue: list[int]) -> tuple[list, str]:
    """The day's batch jobs (users: the recipients; items: the catalogue) and why there are none when so."""
    settings = get_config().recommendations
    if not settings.enabled:
        return [], "recommendations.enabled is false"
    if reason := get_config().sources.missing(NEEDS["recommendations"], "recommendations"):
        return [], reason
    if not decision["send"]:
        return [], f"this run sends nothing ({decision['reason']})"
    plans, missing, users = [], [], user_ids(day)
    for name, recipe in JOBS.items():
        champion = solutions.champion(recipe)
        if champion is None:
            missing.append(recipe)
            continue
        ids = recipients(day, profile) if name == "users" else catalogue
        if not ids:
            continue
        folder = paths.delivery(RECOMMENDATIONS, day, decision["attempt"], name)
        job_input = folder / f"{name}.json"
        with storage.committing(folder, marker=False) as staging:
            given = [users[i] for i in ids] if name == "users" else ids
            batch_format.write_input(staging / job_input.name, INPUT_KEY[recipe], given,
                                     _filter_values(day, name, ids))
        num_results = min(500, settings.per_member + OVERFETCH) if name == "users" else SIMILAR_RESULTS
        request = batch_request(recipe, champion, day, decision["attempt"], job_input, folder / "output", num_results)
        plans.append({"partition": day.isoformat(), "name": name, "recipe": recipe, "lines": len(ids),
                      "input": storage.url_of(job_input), "output": storage.url_of(folder / "output"),
                      "solution_version": champion["version"], "trained_through": champion["trained_through"],
                      "requests": [request]})
    reason = (f"no promoted solution version of {', '.join(missing)} yet (propensity_training trains them weekly)"
              if missing else "")
    return plans, reason


def _filter_values(day: dt.date, name: str, ids: list[int]) -> list[dict]:
    """Each line's stock filter values: the member's home store and online; online for a product."""
    if name != "users":
        return [{filters.LOCATIONS: batch_format.filter_value([filters.ONLINE])}] * len(ids)
    customers = sqljobs.read_partition(paths.trusted("customers", day)).to_pandas()
    home = dict(zip(customers["customer_id"].astype("int64"), customers["home_store_id"], strict=True))
    return [{filters.LOCATIONS: batch_format.filter_value(filters.locations(home.get(i)))} for i in ids]


def output_file(plan: dict):
    """A job's output: <jobOutput>/<input file name>.out, as Personalize names it; where that name is absent, the one
    `.out` file in the output folder (the naming is documented only in older guides)."""
    folder = storage.location(plan["output"])
    expected = folder / batch_format.output_name(storage.location(plan["input"]))
    if expected.exists():
        return expected
    found = sorted(p for p in folder.rglob("*.out") if p.is_file()) if folder.exists() else []
    if len(found) != 1:
        raise outbox.ActivationError(f"recommendations: {storage.url_of(folder)} holds {len(found)} .out file(s), "
                                     f"expected {expected.name} (the {plan['name']} job's output)")
    return found[0]


def _rows(records, products: pd.DataFrame, id_column: str, item_column: str,
          ids: dict[str, int] | None = None) -> pd.DataFrame:
    """The answered lines as rows; `ids` maps the lines' userIds to customer ids (else ids are numbers)."""
    import pandas as pd

    rows = [{id_column: ids[r.id] if ids else int(r.id), "rank": rank, item_column: int(item),
             "score": r.scores[rank - 1] if rank <= len(r.scores) else None}  # similar items give no scores
            for r in records if r.error is None for rank, item in enumerate(r.items, start=1)]
    frame = pd.DataFrame(rows, columns=[id_column, "rank", item_column, "score"]).astype(
        {id_column: "int64", "rank": "int64", item_column: "int64", "score": "float64"})
    details = products.rename(columns={"product_id": item_column})
    return frame.merge(details, on=item_column, how="left")[
        [id_column, "rank", item_column, "name", "category", "price", "score"]]


def commit(day: dt.date, plans: list[dict]) -> dict:
    """Read every job's output (strictly), join name, category and price from the trusted products, and commit the
    members' and the similar items' tables; what was committed."""
    import pyarrow as pa

    from crosschannel.stages.recommendations import data

    products, stock = _products(day), data.stock(day)
    committed = {}
    for plan in plans:
        try:
            found = output_file(plan)
        except outbox.ActivationError as exc:  # its job failed (the recommend task says why): the others go on
            log.warning("recommendations for %s: no %s list today: %s", day, plan["name"], exc)
            committed[plan["name"]] = {"recipe": plan["recipe"], "error": f"no output: {exc}"}
            continue
        records = batch_format.read_output(found)
        if len(records) != plan["lines"]:
            raise outbox.ActivationError(f"recommendations for {day}: {storage.url_of(found)} has "
                                         f"{len(records)} line(s) for {plan['lines']} input line(s)")
        errors = [r for r in records if r.error is not None]
        if plan["name"] == "users":
            customers = {user: customer for customer, user in user_ids(day).items()}
            frame = _kept(stock, _rows(records, products, "customer_id", "product_id", customers), "customer_id",
                          "product_id", get_config().recommendations.per_member)
            folder = members_dir(day)
        else:
            frame, folder = _kept(stock, _rows(records, products, "product_id", "similar_product_id"), "product_id",
                                  "similar_product_id", SIMILAR_RESULTS), similar_dir(day)
        sqljobs.write_partition(folder, pa.Table.from_pandas(frame, preserve_index=False))
        committed[plan["name"]] = {"recipe": plan["recipe"], "solution_version": plan["solution_version"],
                                   "lines": len(records), "answered": len(records) - len(errors),
                                   "errors": [f"{r.key} {r.id}: {r.error}" for r in errors[:5]],
                                   "location": storage.url_of(folder)}
        if errors:
            log.warning("recommendations for %s: %d of %d %s line(s) unanswered, e.g. %s", day, len(errors),
                        len(records), plan["name"], committed[plan["name"]]["errors"][0])
    return committed


def _kept(stock, frame: pd.DataFrame, key: str, item: str, keep: int) -> pd.DataFrame:
    """The lists as of the end of the day of `stock` (data.stock), re-ranked, at most `keep` each: without what the
    member bought in the last
    `exclude_bought_days` days (members' lists), and without what is out of stock today at the member's home store
    and online (online for similar items). On aws the job's filter saw the stock of the last items import, which
    may be a day old; locally the job's filter already removed the same items."""
    import numpy as np

    from crosschannel.stages.recommendations import data

    settings = get_config().recommendations
    day, end = stock.day, data.end_of(stock.day)
    items = np.unique(frame[item].to_numpy(dtype="int64"))
    masks = filters.build(stock, items, end, online_stores=settings.online_stores or None)  # stock has no purchases
    customers = frame[key].to_numpy(dtype="int64") if key == "customer_id" else None
    ok = masks.in_stock_for(customers, frame[item].to_numpy(dtype="int64"))
    if key == "customer_id":
        purchases = data.recent_purchases(day, end - dt.timedelta(days=settings.exclude_bought_days), end)
        bought = set(zip(purchases["customer_id"].astype("int64"), purchases["product_id"].astype("int64"),
                         strict=True))
        ok &= np.array([(c, p) not in bought for c, p in zip(frame[key], frame[item], strict=True)], dtype=bool)
    frame = frame[ok].sort_values([key, "rank"], kind="stable")
    frame["rank"] = frame.groupby(key).cumcount() + 1
    return frame[frame["rank"] <= keep].reset_index(drop=True)


def _products(day: dt.date) -> pd.DataFrame:
    frame = sqljobs.read_partition(paths.trusted("products", day)).to_pandas()
    frame["price"] = frame["price"].astype("float64")
    return frame[["product_id", "name", "category", "price"]]


def catalogue(day: dt.date) -> list[int]:
    """The active products of the day's trusted state: the similar-items job's input."""
    frame = sqljobs.read_partition(paths.trusted("products", day)).to_pandas()
    return sorted(frame.loc[frame["active"].astype(bool), "product_id"].astype("int64"))


def lists(day: dt.date) -> dict[int, list[dict]]:
    """customer id -> the day's recommended products, best first ({"id", "name", "category", "price"}); {} when the
    day has none committed or recommendations are disabled."""
    if not get_config().recommendations.enabled or not storage.is_committed(members_dir(day)):
        return {}
    frame = sqljobs.read_partition(members_dir(day)).to_pandas().sort_values(["customer_id", "rank"])
    found: dict[int, list[dict]] = {}
    for row in frame.itertuples(index=False):
        found.setdefault(int(row.customer_id), []).append(
            {"id": str(row.product_id), "name": row.name if isinstance(row.name, str) else "",
             "category": row.category if isinstance(row.category, str) else "",
             "price": None if row.price != row.price else round(float(row.price), 2)})
    return found


SLOT_FIELDS = ("id", "name", "category", "price")


def slot_columns() -> list[str]:
    """The flat attributes of the delivered lists: recommended_<n>_<id|name|category|price>, n = 1..per_member."""
    return [f"recommended_{n}_{field}" for n in range(1, get_config().recommendations.per_member + 1)
            for field in SLOT_FIELDS]


def slots(profile: pd.DataFrame) -> pd.DataFrame:
    """Per profile row, the deliverable recommendations (consent.deliverable_recommendations) as flat attributes for
    destinations whose attributes are single values (Customer Profiles, Pinpoint): '' where there is none."""
    import pandas as pd

    per_member = get_config().recommendations.per_member
    columns = {column: [""] * len(profile) for column in slot_columns()}
    for i, items in enumerate(consent.deliverable_recommendations(profile).to_list()):  # most are []
        for n, item in enumerate(items[:per_member], start=1):
            for field in SLOT_FIELDS:
                if item[field] is not None:
                    columns[f"recommended_{n}_{field}"][i] = str(item[field])
    return pd.DataFrame(columns, index=profile.index, dtype="string")
