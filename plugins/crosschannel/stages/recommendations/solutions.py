"""Solution versions of the recommender recipes: trained weekly by propensity_training, each registered with a card,
and the champion the daily batch jobs use (crosschannel.stages.activation.recommended).

    <root>/ml/<recipe>/registry/s<YYYYMMDD>-<hash>/card.json   every version (its partition and a hash of its ARN):
                                                   recipe, solution version ARN, filter ARN, GetSolutionMetrics'
                                                   metrics, the decision
    <root>/ml/<recipe>/registry/champion.json      the version the batch jobs use

On aws: the solution `crosschannel-<recipe name>` of `activation.personalize.dataset_group_arn` (created once, with
performAutoTraining off: this weekly run is the training schedule), a FULL CreateSolutionVersion every week, its
metrics from GetSolutionMetrics, and for user personalization the stock filter (CreateFilter; its $LOCATIONS
are each batch input line's filterValues, since a filter cannot compare an item field with a CurrentUser one).
On local: the same validated plan, run by `run_local`: the version is the local recipe as of the partition (the
batch job fits it on that partition's trusted state: batch.run_request) and its metrics are the temporal holdout's
of `evaluate` under GetSolutionMetrics' names (precision_at_10, normalized_discounted_cumulative_gain_at_10,
coverage; Personalize holds out each test user's latest interactions, the local holdout the last 30 days).

Promotion: a new version replaces the champion unless its `recommendations.promotion_metric` is lower than the
champion's by more than `recommendations.promotion_tolerance`, and never over a champion trained on a later
partition; the first version is promoted. Both versions' metrics come from the same kind of holdout, so they are
compared as Personalize reports them. A backfill trains nothing (`plan`): on aws a solution version trains on the
datasets as they are now, not as they were on the backfilled partition.
"""

from __future__ import annotations

import datetime as dt
import logging

from crosschannel.core import awsapi, paths, storage
from crosschannel.core.config import get_config
from crosschannel.core.partition import run_hash
from crosschannel.stages.recommendations.model import SIMILAR_ITEMS, USER_PERSONALIZATION

log = logging.getLogger(__name__)

SOLUTIONS = {USER_PERSONALIZATION: "crosschannel-user-personalization", SIMILAR_ITEMS: "crosschannel-similar-items"}
SHORT = {USER_PERSONALIZATION: "user", SIMILAR_ITEMS: "similar"}
STOCK_FILTER = "crosschannel-in-stock"
STOCK_EXPRESSION = "INCLUDE ItemID WHERE Items.STOCK_LOCATIONS IN ($LOCATIONS)"
LOCAL_METRICS = {"precision_at_10": "precision_at_10", "ndcg_at_10": "normalized_discounted_cumulative_gain_at_10",
                 "coverage": "coverage", "recall_at_10": "recall_at_10"}  # evaluate's name: GetSolutionMetrics'


def arn(kind: str, name: str) -> str:
    """A Personalize resource's ARN (`kind`: solution, filter) in the dataset group's region and account."""
    group = get_config().activation.personalize.dataset_group_arn or "arn:aws:personalize:local:000000000000:x/x"
    prefix = group.split(":dataset-group/")[0] if ":dataset-group/" in group else group.rsplit(":", 1)[0]
    return f"{prefix}:{kind}/{name}"


def solution_arn(name: str) -> str:
    return arn("solution", name)


def plan(day: dt.date, run: str, *, backfill: bool = False) -> list[dict]:
    """One training plan per recipe: CreateSolution (used when it exists), CreateFilter (the stock filter) and
    CreateSolutionVersion, validated against the botocore model; none when disabled or from a backfill."""
    if not get_config().runs("recommendations"):
        return []
    if backfill:
        log.warning("recommendations for %s: a backfill trains no solution version (Personalize trains on the "
                    "datasets as they are now, not as they were on %s)", day, day)
        return []
    group = get_config().activation.personalize.dataset_group_arn
    plans = []
    for recipe, name in SOLUTIONS.items():
        requests = [awsapi.request("personalize", "CreateSolution", {
            "name": name, "datasetGroupArn": group, "recipeArn": f"arn:aws:personalize:::recipe/{recipe}",
            "performAutoTraining": False})]
        requests.append(awsapi.request("personalize", "CreateFilter", {  # one filter of the group, both recipes
            "name": STOCK_FILTER, "datasetGroupArn": group, "filterExpression": STOCK_EXPRESSION}))
        requests.append(awsapi.request("personalize", "CreateSolutionVersion", {
            "solutionArn": solution_arn(name), "trainingMode": "FULL",
            "name": f"crosschannel-{SHORT[recipe]}-{day:%Y%m%d}-{run_hash(run)}"}))
        plans.append({"partition": day.isoformat(), "recipe": recipe, "requests": requests})
    return plans


def local_metrics(recipe: str, day: dt.date) -> dict:
    """The local version's metrics under GetSolutionMetrics' names: the temporal holdout of `day` (evaluate)."""
    from crosschannel.stages.recommendations import evaluate

    figures = evaluate.evaluate(day, latents=None)[recipe]
    return {name: float(figures[local]) for local, name in LOCAL_METRICS.items()}


def run_local(plan: dict) -> dict:
    """The local target's training of a plan: what the aws operator returns (PersonalizeSolutionOperator)."""
    day = dt.date.fromisoformat(plan["partition"])
    version = next(r["params"] for r in plan["requests"] if r["operation"] == "CreateSolutionVersion")
    filters = [r["params"]["name"] for r in plan["requests"] if r["operation"] == "CreateFilter"]
    return {"recipe": plan["recipe"], "partition": plan["partition"], "status": "ACTIVE",
            "solution_arn": version["solutionArn"],
            "solution_version_arn": f"{version['solutionArn']}/{version['name']}",
            "filter_arn": arn("filter", filters[0]) if filters else None,
            "metrics": local_metrics(plan["recipe"], day)}


def champion(recipe: str) -> dict | None:
    """The champion's card, or None before the first version."""
    pointer = paths.registry(recipe) / "champion.json"
    if not pointer.exists():
        return None
    return storage.read_json(paths.registry(recipe) / storage.read_json(pointer)["version"] / "card.json")


def version_id(day: dt.date, solution_version_arn: str) -> str:
    """A version's registry id: its partition and a hash of its ARN (s20261101-1a2b3c). The same version registered
    again (a retry, a cleared run) lands on the same id; two runs registering at once cannot take the same one."""
    import hashlib

    return f"s{day:%Y%m%d}-{hashlib.sha256(solution_version_arn.encode()).hexdigest()[:6]}"


def decide(metrics: dict, current: dict | None, day: dt.date) -> tuple[bool, str]:
    """Promote unless the promotion metric is worse than the champion's by more than the tolerance, or the version
    was trained on an earlier partition than the champion's (a backfilled week never replaces a newer model)."""
    settings = get_config().recommendations
    name, tolerance = settings.promotion_metric, settings.promotion_tolerance
    if name not in metrics:
        return False, f"not promoted: GetSolutionMetrics gave no {name} ({sorted(metrics)})"
    if current is None:
        return True, f"promoted: the first version ({name} {metrics[name]:.4f})"
    if day.isoformat() < current["trained_through"]:
        return False, (f"not promoted: trained through {day}, before the champion {current['version']} "
                       f"(trained through {current['trained_through']})")
    before = current["metrics"].get(name)
    if before is not None and metrics[name] < before - tolerance:
        return False, (f"not promoted: {name} {metrics[name]:.4f} is worse than the champion {current['version']}'s "
                       f"{before:.4f} by more than {tolerance}")
    return True, f"promoted: {name} {metrics[name]:.4f}, champion {current['version']} had {before}"


def register(day: dt.date, trained: list[dict]) -> dict:
    """Register every trained version with its card, promote by the rule, and keep the outcome in the day's reports
    (<root>/reports/dt=D/recommendations/solutions.json); the outcome per recipe. A version registered before (a
    retry) keeps its card; its promotion is completed if a crash came between the card and the champion pointer."""
    outcome = {}
    for result in trained:
        recipe = result["recipe"]
        version = version_id(day, result["solution_version_arn"])
        path = paths.registry(recipe) / version / "card.json"
        current = champion(recipe)
        if path.exists():
            card = storage.read_json(path)
            log.info("%s %s: registered before (%s)", recipe, version, card["decision"])
        else:
            promoted, reason = decide(result["metrics"], current, day)
            card = {"version": version, "recipe": recipe, "trained_through": day.isoformat(),
                    "solution_arn": result["solution_arn"], "solution_version_arn": result["solution_version_arn"],
                    "filter_arn": result.get("filter_arn"), "metrics": result["metrics"],
                    "promotion_metric": get_config().recommendations.promotion_metric, "promoted": promoted,
                    "decision": reason, "previous_champion": current["version"] if current else None,
                    "registered_at": dt.datetime.now(dt.UTC).isoformat()}
            storage.write_json(path, card)
            log.info("%s %s: %s", recipe, version, reason)
        if card["promoted"] and (current or {}).get("version") == card["previous_champion"]:
            storage.write_json(paths.registry(recipe) / "champion.json", {"version": version})
        outcome[recipe] = {k: card[k] for k in ("version", "promoted", "decision", "metrics")}
    storage.write_json(paths.reports(day, "recommendations", "solutions.json"), outcome)
    return outcome
