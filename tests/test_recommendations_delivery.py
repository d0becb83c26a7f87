"""The day's recommendation lists (crosschannel.stages.activation.recommended) and the solution registry
(crosschannel.stages.recommendations.solutions): what survives to the payloads, retries and re-runs."""

from __future__ import annotations

import datetime as dt

import pytest

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import recommended
from crosschannel.stages.recommendations import batch_format, solutions
from tests.test_recommendations import CREATED, DAY, _publish, shop  # noqa: F401 (the fixture)


def _products() -> None:
    categories = {1: "apparel", 2: "apparel", 3: "apparel", 4: "home", 5: "home", 6: "toys", 7: "toys"}
    _publish("products", DAY, [{"product_id": p, "name": f"item {p}", "category": c, "price": 9.5,
                                "active": p != 7, "created_at": CREATED} for p, c in categories.items()])


def _plan(name: str, lines: list[str], ids: list[int]) -> dict:
    folder = paths.delivery(recommended.RECOMMENDATIONS, DAY, "a1", name)
    key = "userId" if name == "users" else "itemId"
    batch_format.write_input(folder / f"{name}.json", key, ids)
    if lines:
        batch_format.write_lines(folder / "output" / f"{name}.json.out", lines)
    return {"partition": DAY.isoformat(), "name": name, "recipe": recommended.JOBS[name], "lines": len(ids),
            "input": storage.url_of(folder / f"{name}.json"), "output": storage.url_of(folder / "output"),
            "solution_version": "s1", "trained_through": DAY.isoformat(), "requests": []}


@pytest.mark.usefixtures("shop")
def test_the_lists_drop_todays_out_of_stock_and_recent_purchases_and_a_failed_job_stops_nothing():
    """Product 2 has no stock anywhere today (Personalize's filter may have seen yesterday's), customer 1 bought 1
    five days ago; 3 is out of stock at customer 1's home store but ships online from store 2. The similar-items
    job failed: the members' lists are committed all the same."""
    _products()
    users = _plan("users", [batch_format.output_line("userId", 1, [2, 1, 3, 4, 5, 6], [.3, .2, .2, .1, .1, .1]),
                            batch_format.output_line("userId", 2, [6, 2, 4], [.5, .3, .2])], [1, 2])
    items = _plan("items", [], [1])

    committed = recommended.commit(DAY, [users, items])

    lists = recommended.lists(DAY)
    assert [p["id"] for p in lists[1]] == ["3", "4", "5"]
    assert [p["id"] for p in lists[2]] == ["6", "4"]
    assert lists[1][0] == {"id": "3", "name": "item 3", "category": "apparel", "price": 9.5}
    assert committed["users"]["answered"] == 2 and "0 .out file(s)" in committed["items"]["error"]


@pytest.mark.usefixtures("shop")
def test_disabled_recommendations_deliver_no_list_committed_earlier_that_day(monkeypatch):
    _products()
    recommended.commit(DAY, [_plan("users", [batch_format.output_line("userId", 1, [3], [.3])], [1])])
    assert recommended.lists(DAY)

    monkeypatch.setenv("CROSSCHANNEL__RECOMMENDATIONS__ENABLED", "false")
    get_config.cache_clear()
    assert recommended.lists(DAY) == {}


def test_each_delivery_attempt_names_its_own_batch_job(local_env):
    champion = {"solution_version_arn": "arn:aws:personalize:us-east-1:1:solution/x/v1", "filter_arn": None}
    names = {recommended.batch_request(recommended.USER_PERSONALIZATION, champion, DAY, attempt, storage.zone("i"),
                                       storage.zone("o"), 3)["params"]["jobName"] for attempt in ("a1", "a2")}
    assert len(names) == 2 and all(len(n) <= 63 for n in names)


def _trained(arn: str, ndcg: float) -> dict:
    return {"recipe": solutions.USER_PERSONALIZATION, "solution_arn": "arn:x", "solution_version_arn": arn,
            "filter_arn": None, "metrics": {"normalized_discounted_cumulative_gain_at_10": ndcg}}


def test_a_retried_registration_keeps_one_card_and_completes_a_half_done_promotion(local_env):
    registry = paths.registry(solutions.USER_PERSONALIZATION)
    first = solutions.register(DAY, [_trained("arn:v1", 0.2)])[solutions.USER_PERSONALIZATION]
    (registry / "champion.json").unlink()  # a crash between the card and the champion pointer

    again = solutions.register(DAY, [_trained("arn:v1", 0.2)])[solutions.USER_PERSONALIZATION]

    assert again["version"] == first["version"] and [p.name for p in registry.iterdir() if p.is_dir()] == \
        [first["version"]]
    assert solutions.champion(solutions.USER_PERSONALIZATION)["version"] == first["version"]


def test_a_backfilled_week_never_replaces_a_newer_champion(local_env):
    solutions.register(DAY, [_trained("arn:v1", 0.2)])
    older = solutions.register(DAY - dt.timedelta(days=28), [_trained("arn:v0", 0.3)])

    assert not older[solutions.USER_PERSONALIZATION]["promoted"]
    assert "before the champion" in older[solutions.USER_PERSONALIZATION]["decision"]
    assert solutions.champion(solutions.USER_PERSONALIZATION)["solution_version_arn"] == "arn:v1"
    assert solutions.plan(DAY, "run", backfill=True) == []


@pytest.mark.parametrize(("ndcg", "promoted"), [(0.19, False), (0.2, True), (0.25, True)])
def test_a_new_version_replaces_the_champion_unless_worse(local_env, ndcg, promoted):
    solutions.register(DAY, [_trained("arn:v1", 0.2)])
    later = solutions.register(DAY + dt.timedelta(days=7), [_trained("arn:v2", ndcg)])
    assert later[solutions.USER_PERSONALIZATION]["promoted"] is promoted
