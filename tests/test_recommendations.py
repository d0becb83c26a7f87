"""The local recommender (crosschannel.stages.recommendations): Personalize's batch format written and parsed
exactly, the filters, the offline metrics on a hand-built case, and quality on a small generated retailer."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from crosschannel.core import paths, source, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.stages.recommendations import batch, batch_format, data, evaluate, filters, model
from crosschannel.stages.recommendations.batch_format import BatchFormatError
from tests.conftest import configure

DAY = dt.date(2026, 11, 3)
CREATED = dt.datetime(2026, 1, 1)


def _at(days_before: int, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(DAY - dt.timedelta(days=days_before), dt.time(hour))


def _publish(name: str, day: dt.date, rows: list[dict]) -> None:
    sqljobs.write_partition(paths.trusted(name, day), pa.Table.from_pylist(rows))


# Products 1-6 are active (apparel 1-3, home 4-5, toys 6), 7 is retired. Product 2 has no stock anywhere, product
# 3 none at store 1 (in stock at store 2). Customer 1 (home store 1) bought 1 five days ago and 4 sixty days ago;
# customer 2 (home store 2) buys apparel; customer 3 has no home store and no history.
PURCHASES = [(1, 1, 5), (1, 4, 60), (2, 1, 40), (2, 2, 41), (2, 3, 42), (2, 5, 43), (2, 1, 80), (2, 3, 81)]


@pytest.fixture
def shop(local_env):
    categories = {1: "apparel", 2: "apparel", 3: "apparel", 4: "home", 5: "home", 6: "toys", 7: "toys"}
    _publish("products", DAY, [{"product_id": p, "category": c, "active": p != 7, "created_at": CREATED}
                               for p, c in categories.items()])
    _publish("customers", DAY, [{"customer_id": c, "external_id": None, "home_store_id": store,
                                 "signup_date": dt.date(2025, 1, 1)} for c, store in ((1, 1), (2, 2), (3, None))])
    stock = {(1, 2): 0, (2, 2): 0, (1, 3): 0}
    _publish("inventory", DAY, [{"store_id": s, "product_id": p, "on_hand": stock.get((s, p), 10)}
                                for s in (1, 2) for p in range(1, 7)])
    _publish("orders", DAY, [{"order_id": n, "customer_id": c, "order_ts": _at(days)}
                             for n, (c, _, days) in enumerate(PURCHASES, start=1)])
    _publish("order_lines", DAY, [{"order_id": n, "line_no": 1, "product_id": p, "quantity": 1}
                                  for n, (_, p, _) in enumerate(PURCHASES, start=1)])
    return data.read(DAY)


def _run(recipe: str, ids: list, **kwargs) -> tuple[dict, list[batch_format.BatchRecord], str]:
    job_input, job_output = batch.default_folders(recipe, DAY)
    result = batch.run_job(DAY, batch.write_input(job_input, recipe, ids), job_output, recipe=recipe, **kwargs)
    output = storage.location(result["output"])
    return result, batch_format.read_output(output), output.read_text()


# ---- the format

def test_an_output_line_is_personalizes_compact_json():
    line = batch_format.output_line("userId", 42, [7, 3], [0.123456789, 0.1])
    assert line == ('{"input":{"userId":"42"},"output":{"recommendedItems":["7","3"],'
                    '"scores":[0.1234568,0.1]},"error":null}')
    assert batch_format.output_line("itemId", "17", ["9"], [1.0]) == \
        '{"input":{"itemId":"17"},"output":{"recommendedItems":["9"],"scores":[1.0]},"error":null}'


def test_a_userid_that_is_a_customers_external_id_gets_that_customers_list(shop):
    """Personalize knows customers by USER_ID, the retailer's external id when it has one: the local job too."""
    by_id = {r.id: r.items for r in _run(model.USER_PERSONALIZATION, [1, 2], num_results=3)[1]}
    _publish("customers", DAY, [{"customer_id": c, "external_id": e, "home_store_id": store,
                                 "signup_date": dt.date(2025, 1, 1)} for c, e, store in
                                ((1, "C-1", 1), (2, None, 2), (3, "C-3", None))])

    _, records, _ = _run(model.USER_PERSONALIZATION, ["C-1", "2", "1", "999"], num_results=3)

    assert [r.id for r in records] == ["C-1", "2", "1", "999"]
    assert records[0].items == by_id["1"] and records[1].items == by_id["2"]
    assert records[2].items == records[3].items  # "1" is not customer 1's id any more: an unknown user


def test_a_job_writes_one_output_line_per_input_line_in_order(shop):
    result, records, text = _run(model.USER_PERSONALIZATION, [3, 1, 999, 2], num_results=3)

    assert storage.location(result["output"]).name == "users.json.out"  # Personalize: <input name>.out
    assert storage.location(result["jobInput"]).read_text() == \
        '{"userId":"3"}\n{"userId":"1"}\n{"userId":"999"}\n{"userId":"2"}\n'
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 4 == result["lines"]
    for line, record in zip(lines, records, strict=True):
        parsed = json.loads(line)
        assert list(parsed) == ["input", "output", "error"] and parsed["error"] is None
        assert list(parsed["output"]) == ["recommendedItems", "scores"]
        assert line == batch_format.output_line("userId", record.id, record.items, record.scores)
        assert len(record.items) == 3 and list(record.scores) == sorted(record.scores, reverse=True)
    assert [r.id for r in records] == ["3", "1", "999", "2"]


def test_similar_items_are_other_in_stock_active_items(shop):
    _, records, _ = _run(model.SIMILAR_ITEMS, [1, 3, 4, 7, 404])

    for record in records:
        assert record.key == "itemId" and record.items
        assert record.id not in record.items
        assert not {"2", "7"} & set(record.items)  # out of stock everywhere; retired
    by_item = {r.id: r.items for r in records}
    assert by_item["1"][0] == "3"  # bought by the same customer, same category


def test_a_recipe_refuses_the_other_kind_of_input(shop):
    job_input, job_output = batch.default_folders(model.SIMILAR_ITEMS, DAY)
    users = batch.write_input(job_input, model.USER_PERSONALIZATION, [1])
    with pytest.raises(Exception, match="aws-similar-items takes itemId lines, the file holds userId lines"):
        batch.run_job(DAY, users, job_output, recipe=model.SIMILAR_ITEMS)


# ---- the filters

def test_a_recently_bought_item_and_an_out_of_stock_item_are_never_recommended(shop):
    _, records, _ = _run(model.USER_PERSONALIZATION, [1, 2, 3, 999])
    by_user = {r.id: set(r.items) for r in records}

    assert by_user["1"] == {"3", "4", "5", "6"}  # not 1 (bought 5 days ago), 4 was 60 days ago: allowed again
    assert by_user["2"] == {"1", "3", "4", "5", "6"}  # bought 40 days ago and more: allowed
    assert all("2" not in items and "7" not in items for items in by_user.values())


def test_the_exclusion_window_is_a_parameter(shop):
    _, records, _ = _run(model.USER_PERSONALIZATION, [2], exclude_days=45)
    assert set(records[0].items) == {"4", "6"}  # 1, 3 (40-42 days ago) and 5 (43) are out; 2 has no stock
    _, records, _ = _run(model.USER_PERSONALIZATION, [2], exclude_days=30)
    assert set(records[0].items) == {"1", "3", "4", "5", "6"}


def test_stock_counts_at_the_home_store_or_online(shop):
    masks = filters.build(shop, np.arange(1, 7), data.end_of(DAY), online_stores=[1])
    blocked = masks.blocked(np.array([1, 2, 3]))
    # product 3: none at store 1 (customer 1's home and the online stock here), five at store 2 (customer 2's)
    assert blocked[:, 2].tolist() == [True, False, True]
    assert blocked[:, 1].all()  # product 2: none anywhere
    every_store = filters.build(shop, np.arange(1, 7), data.end_of(DAY))
    assert not every_store.blocked(np.array([1, 3]))[:, 2].any()  # online ships from store 2's stock


def test_the_popularity_baseline_has_the_same_format_and_filters(shop):
    _, records, _ = _run(model.POPULARITY, [1, 3])
    assert records[0].items == ("3", "4", "5", "6")  # by purchases: 3 (twice), then 4, 5 (once), then 6
    assert records[1].items[:2] == ("1", "3")  # 1 (three purchases) is only excluded for customer 1


# ---- the parser

GOOD = '{"input":{"userId":"1"},"output":{"recommendedItems":["7","3"],"scores":[0.2,0.1]},"error":null}'


@pytest.mark.parametrize(("bad", "says"), [
    ("not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"input":{"userId":"2"}}', "expected the keys"),
    ('{"input":{"userId":"2"},"output":{"recommendedItems":["7"],"other":1},"error":null}', "recommendedItems \\(and"),
    ('{"input":{"userId":"2"},"output":{"recommendedItems":["7","3"],"scores":[0.2,0.1,0.05]},"error":null}',
     "at most 2 finite"),
    ('{"input":{"userId":"2"},"output":{"recommendedItems":[7],"scores":[0.2]},"error":null}', "non-empty strings"),
    ('{"input":{"userId":"2"},"output":{"recommendedItems":["7","7"],"scores":[0.2,0.1]},"error":null}', "repeats"),
    ('{"input":{"itemId":"2"},"output":{"recommendedItems":["7"],"scores":[0.2]},"error":null}', "itemId in a file"),
    ('{"input":{"userId":2},"output":{"recommendedItems":["7"],"scores":[0.2]},"error":null}', "non-empty string"),
    ('{"input":{"userId":"2"},"output":{"recommendedItems":["7"],"scores":[0.2]},"error":""}', "error must be"),
    ('{"input":{"userId":"2"},"output":{"recommendedItems":["7"],"scores":[NaN]},"error":null}', "finite"),
])
def test_a_bad_output_line_fails_naming_the_file_and_the_line(local_env, bad, says):
    path = storage.zone("tmp") / "bad.json.out"
    batch_format.write_lines(path, [GOOD, GOOD, bad, GOOD])

    with pytest.raises(BatchFormatError, match=rf"/tmp/bad\.json\.out:3: .*{says}"):
        batch_format.read_output(path)


def test_an_unanswered_line_carries_its_error(local_env):
    path = storage.zone("tmp") / "users.json.out"
    batch_format.write_lines(path, [GOOD, batch_format.error_line("userId", 5, "user not found")])

    records = batch_format.read_output(path)
    assert records[0] == ("userId", "1", ("7", "3"), (0.2, 0.1), None)
    assert records[1].error == "user not found" and records[1].items == ()


def test_personalize_lines_without_scores_or_error_parse(local_env):
    """Similar items give no scores and may leave `error` out; v2's filter placeholders may have no score."""
    path = storage.zone("tmp") / "items.json.out"
    batch_format.write_lines(path, ['{"input":{"itemId":"105"},"output":{"recommendedItems":["106","107"]}}',
                                    '{"input":{"itemId":"9"},"output":{"recommendedItems":["1","2"],"scores":[0.3]},'
                                    '"error":null}'])

    records = batch_format.read_output(path)
    assert records[0] == ("itemId", "105", ("106", "107"), (), None)
    assert records[1].scores == (0.3,)


def test_input_lines_carry_their_filter_values(local_env):
    path = storage.zone("tmp") / "users.json"
    values = [{"LOCATIONS": batch_format.filter_value(["S7", "ONLINE"])}, None]
    batch_format.write_input(path, "userId", [1, 2], values)

    assert path.read_text().splitlines()[0] == '{"userId":"1","filterValues":{"LOCATIONS":"\\"S7\\",\\"ONLINE\\""}}'
    assert batch_format.read_input(path) == ("userId", ["1", "2"], values)


def test_a_bad_input_line_and_a_missing_file_are_named(local_env):
    path = storage.zone("tmp") / "users.json"
    batch_format.write_lines(path, ['{"userId":"1"}', '{"user":"2"}'])
    with pytest.raises(BatchFormatError, match=r"users\.json:2: expected"):
        batch_format.read_input(path)
    with pytest.raises(BatchFormatError, match=r"nothing\.json\.out: no such batch inference file"):
        batch_format.read_output(storage.zone("tmp") / "nothing.json.out")


# ---- the metrics

def test_the_metrics_of_a_hand_built_case():
    recommended = np.array([[10, 20, 30], [40, -1, -1]])
    relevant = pd.DataFrame({"row": [0, 0, 1], "product_id": [20, 40, 40]})

    figures = evaluate.metrics(recommended, relevant, catalogue_size=8, k=3)

    # customer 0: one of two bought items, at rank 2; customer 1: its one item at rank 1
    assert figures["recall_at_3"] == pytest.approx((0.5 + 1.0) / 2)
    assert figures["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    ndcg_0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert figures["ndcg_at_3"] == pytest.approx((ndcg_0 + 1.0) / 2)
    assert figures["coverage"] == pytest.approx(4 / 8)


def test_the_oracle_ranks_by_true_category_affinity_over_the_category_size():
    latents = {"affinity": np.array([[0.6, 0.4], [0.1, 0.9]]), "category": np.array([0, 0, 0, 1])}
    items = np.array([1, 2, 3, 4])

    ranked = evaluate.oracle_rank(latents, np.array([1, 2]), items, lambda c: np.zeros((c.size, 4), bool), k=2)

    # customer 1: product 4 has 0.4 of one item, products 1-3 0.6 / 3 each; ties go to the lower id
    assert ranked.tolist() == [[4, 1], [4, 1]]
    assert evaluate.oracle_rank(latents, np.array([3]), items, None, k=2) is None  # not the generator's customer


# ---- a generated retailer

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated retailer whose source tables are published as the trusted zone of its last history day
    (the trusted current state equals the source DB's: test_ingest_e2e reconciles them)."""
    from crosschannel.sim import generator

    with pytest.MonkeyPatch.context() as monkeypatch:
        cfg = configure(monkeypatch, tmp_path_factory.mktemp("recommend"), CROSSCHANNEL__GENERATOR__CUSTOMERS="1500",
                        CROSSCHANNEL__GENERATOR__HISTORY_DAYS="150", CROSSCHANNEL__GENERATOR__PRODUCTS="120",
                        CROSSCHANNEL__GENERATOR__EVENT_HISTORY_DAYS="1")
        generator.generate(cfg.generator)
        day = dt.date.fromisoformat(cfg.generator.start_partition) - dt.timedelta(days=1)
        engine = source.connect(cfg.source.sqlalchemy_url)
        with engine.connect() as conn:
            for name in data.TABLES:
                frame = pd.read_sql(sa.select(source.table(name)), conn)
                sqljobs.write_partition(paths.trusted(name, day), pa.Table.from_pandas(frame, preserve_index=False))
        yield day, data.read(day)
    get_config.cache_clear()


def test_on_a_generated_retailer_the_recommender_beats_popularity(generated):
    day, trusted = generated
    result = evaluate.evaluate(day, trusted=trusted)
    figures = result[model.USER_PERSONALIZATION]

    assert figures["users"] > 200
    assert figures["recall_at_10"] >= 1.5 * figures["popularity_recall_at_10"], figures
    assert figures["ndcg_at_10"] > figures["popularity_ndcg_at_10"]
    assert figures["oracle_recall_at_10"] > figures["popularity_recall_at_10"]
    assert figures["coverage"] > figures["popularity_coverage"]
    assert result[model.SIMILAR_ITEMS]["recall_at_10"] > result[model.SIMILAR_ITEMS]["popularity_recall_at_10"]
    assert storage.read_json(storage.location(evaluate.write(day, result))) == json.loads(json.dumps(result))


def test_on_a_generated_retailer_every_customer_gets_a_full_filtered_list(generated):
    day, trusted = generated
    customers = trusted.customers["customer_id"].to_numpy()
    job_input, job_output = batch.default_folders(model.USER_PERSONALIZATION, day)
    result = batch.run_job(day, batch.write_input(job_input, model.USER_PERSONALIZATION, customers), job_output,
                           num_results=10, trusted=trusted)
    records = batch_format.read_output(storage.location(result["output"]))

    assert [int(r.id) for r in records] == customers.tolist() and result["short_lists"] == 0
    recent = trusted.purchases[trusted.purchases["ts"] >= data.end_of(day) - dt.timedelta(days=30)]
    recommended = pd.DataFrame([(int(r.id), int(i)) for r in records for i in r.items],
                               columns=["customer_id", "product_id"])
    assert recommended.merge(recent, on=["customer_id", "product_id"]).empty
    assert all(len(r.items) == 10 for r in records)


def test_a_jobs_output_is_found_under_its_documented_name_or_as_the_one_out_file(local_env):
    from crosschannel.stages.activation import recommended
    from crosschannel.stages.activation.outbox import ActivationError

    folder = storage.zone("tmp", "job")
    plan = {"name": "users", "input": storage.url_of(folder / "users.json"), "output": storage.url_of(folder / "out")}
    batch_format.write_lines(folder / "out" / "users.json.out", [GOOD])
    assert recommended.output_file(plan).name == "users.json.out"

    (folder / "out" / "users.json.out").rename(folder / "out" / "part-0.json.out")
    assert recommended.output_file(plan).name == "part-0.json.out"
    batch_format.write_lines(folder / "out" / "other.out", [GOOD])
    with pytest.raises(ActivationError, match=r"holds 2 \.out file\(s\), expected users\.json\.out"):
        recommended.output_file(plan)
