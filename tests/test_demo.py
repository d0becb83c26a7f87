"""`make demo`'s job on a small retailer: the chain runs and the JSON summary holds the promised figures."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from crosschannel.core import paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.sim import demo
from crosschannel.stages.activation import audiences
from crosschannel.stages.activation import segment as segment_traits
from crosschannel.stages.models import registry as model_registry
from tests.conftest import configure

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, airflow_db):
    """The demo's chain for two days on a small retailer (history long enough for the models' split)."""

    with pytest.MonkeyPatch.context() as monkeypatch:
        configure(monkeypatch, tmp_path_factory.mktemp("demo"), CROSSCHANNEL__GENERATOR__CUSTOMERS="600",
                  CROSSCHANNEL__GENERATOR__HISTORY_DAYS="220", CROSSCHANNEL__MODELS__MAX_TRIALS="2",
                  # a 600-customer day has fewer new interactions than Personalize's 1,000 for an incremental load
                  CROSSCHANNEL__ACTIVATION__PERSONALIZE__MIN_INTERACTIONS="50")
        summary = demo.run(days=2)
        yield summary
    get_config.cache_clear()


def test_demo_runs_the_chain_and_writes_its_summary(demo_run):
    summary = json.loads((storage.zone("reports", "demo_summary.json")).read_text())
    assert summary["partition"] == "2026-11-02" and summary["partitions"] == ["2026-11-01", "2026-11-02"]
    assert summary["wall_seconds"] > 0
    ingest = summary["stages"]["ingest"]
    assert ingest["full_load"] is False and ingest["runs"]["2026-11-01"]["full_load"] is True
    assert set(ingest["rows"]) == {"stores", "products", "customers", "inventory", "orders", "order_lines",
                                   "returns"}
    first_day = summary["generator"]["2026-11-01"]["changes"]["customers"]
    history = summary["source"]["history"]["rows"]["customers"]
    assert ingest["runs"]["2026-11-01"]["rows"]["customers"] == history + first_day["I"] - first_day["D"]
    assert ingest["segment_messages"] == summary["generator"]["2026-11-02"]["events"]
    trusted = summary["stages"]["trusted"]["rows"]
    assert trusted["customers"] == ingest["runs"]["2026-11-01"]["rows"]["customers"] + sum(
        (+1 if op == "I" else -1 if op == "D" else 0) * n
        for op, n in ingest["cdc_ops"]["customers"].items())
    derived = ("identity_map", "events", "customer_360")
    assert summary["stages"]["trusted"]["gates"] == {**{f"trusted_{t}": True for t in [*ingest["rows"], *derived]},
                                                     "features_customer": True}
    assert summary["stages"]["trusted"]["features_rows"] == trusted["customer_360"] == trusted["customers"]
    assert trusted["events"] == ingest["segment_messages"]
    docs = summary["stages"]["trusted"]["data_docs"]
    assert re.search(r"/data_docs/_v\d+-[0-9a-f]+/index\.html$", docs["data_docs"])  # the committed version
    assert "trusted_orders" in storage.location(docs["data_docs"]).read_text()
    assert "features_customer" in storage.location(docs["data_docs_derived"]).read_text()
    for name, figures in summary["models"].items():
        assert 0.5 < figures["baseline_auc"] < 1 and 0.5 < figures["oracle_auc"] <= 1, name
        assert 0.5 < figures["test_auc"] <= 1 and figures["version"] == "v0001", name
        assert "<img" in storage.location(figures["report"]).read_text()
    last_scores = summary["scores"]["2026-11-02"]
    assert {m: f["rows"] for m, f in last_scores.items()} == {"churn": trusted["customers"],
                                                             "repurchase": trusted["customers"]}
    assert all(f["gate"] for day in summary["partitions"] for f in summary["scores"][day].values())
    assert all(f["psi"] is not None for f in last_scores.values())
    printed = demo.render(summary, storage.zone("reports", "demo_summary.json"))
    assert "Demo finished in" in printed and "Summary JSON:" in printed and "oracle" in printed
    assert "win_back" in printed and "treatment" in printed


def test_the_demo_activates_every_audience_through_every_destination(demo_run):

    summary = json.loads((storage.zone("reports", "demo_summary.json")).read_text())
    assert set(summary["audiences"]) == set(audiences.names())
    for name, counts in summary["audiences"].items():
        assert counts["treatment"] > 0, name
        assert counts["control"] < counts["treatment"], name  # a 10% hold-out
    destinations = summary["destinations"]
    assert destinations["pinpoint"]["files"] >= len(audiences.names())
    assert destinations["pinpoint"]["requests"] == len(audiences.names())
    assert destinations["personalize"]["files"] == 3 and destinations["personalize"]["requests"] == 3
    assert destinations["customer_profiles"]["files"] == 1
    assert all(f["sent"] == 0 for f in destinations.values())  # the local target sends nothing to AWS
    first, second = (summary["activation"][day] for day in summary["partitions"])
    assert first["destinations"]["customer_profiles"]["requests"] == 3 + len(audiences.names())
    assert second["destinations"]["customer_profiles"]["requests"] == 3  # the segment definitions exist
    assert _import_modes(dt.date(2026, 11, 2)) == {"interactions": "INCREMENTAL", "items": "INCREMENTAL",
                                                   "users": "INCREMENTAL"}
    segment = {day: summary["activation"][day]["destinations"]["segment"]["messages"] for day in summary["partitions"]}
    assert 0 < segment["2026-11-02"] < segment["2026-11-01"] == first["profiles"]  # only changed traits


def test_the_demo_reads_out_every_audience_against_the_generators_truth(demo_run):
    """Issue 17: the sends the demo plants before the first partition are due on it, one per horizon: every audience
    has a readout per horizon with its estimate, interval and the generator's true uplift (0 without an effect)."""
    summary = json.loads((storage.zone("reports", "demo_summary.json")).read_text())
    settings = get_config().readouts
    assert set(summary["readouts"]) == set(audiences.names())
    for name, per_horizon in summary["readouts"].items():
        assert set(per_horizon) == {str(h) for h in settings.horizons_days}, name
        for horizon, figures in per_horizon.items():
            sent = dt.date.fromisoformat(summary["partitions"][0]) - dt.timedelta(days=int(horizon))
            assert figures["send_day"] == sent.isoformat() and figures["treatment"] > 0, (name, horizon)
            assert figures["control"] > 0 and figures["estimate"] is not None, (name, horizon)
            low, high = figures["interval"]
            assert low <= figures["estimate"] <= high, (name, horizon)
            planted = settings.effect.hazard_change.get(name, 0.0)
            assert (figures["true_uplift"] > 0) if planted > 0 else (figures["true_uplift"] == 0), (name, horizon)
            assert "<svg" in storage.location(figures["report"]).read_text()
    assert "Campaign readouts" in demo.render(summary, storage.zone("reports", "demo_summary.json"))


def test_the_demo_measures_the_local_recommender_against_popularity_and_the_oracle(demo_run):
    """Issue 18, item 5: a 30-day holdout to the last partition, in the summary and the day's reports."""
    summary = json.loads((storage.zone("reports", "demo_summary.json")).read_text())
    user = summary["recommendations"]["aws-user-personalization-v2"]
    assert user["users"] > 50 and user["test_until"] == "2026-11-02"
    assert 0 < user["popularity_recall_at_10"] < user["recall_at_10"] <= user["oracle_recall_at_10"] * 1.5
    assert 0 < user["coverage"] <= 1
    evaluation = storage.read_json(paths.reports(dt.date(2026, 11, 2), "recommendations", "evaluation.json"))
    assert evaluation["aws-user-personalization-v2"]["recall_at_10"] == user["recall_at_10"]
    assert "Recommendations (local recommender" in demo.render(summary, storage.zone("reports", "demo_summary.json"))


def test_every_sent_treatment_member_gets_recommendations_and_the_catalogue_similar_items(demo_run):
    """Issue 18, done when: each partition's reachable treatment members have a list of `per_member` items (none
    bought in the exclusion window), it reaches their payloads, and every active product has similar items, from a
    promoted solution version registered with its metrics."""
    from crosschannel.stages.activation import consent, profiles, recommended
    from crosschannel.stages.recommendations import solutions

    summary = json.loads((storage.zone("reports", "demo_summary.json")).read_text())
    per_member = get_config().recommendations.per_member
    for recipe in solutions.SOLUTIONS:
        card = solutions.champion(recipe)
        assert card["promoted"] and card["metrics"]["normalized_discounted_cumulative_gain_at_10"] > 0, recipe
    for day in map(dt.date.fromisoformat, summary["partitions"]):
        profile = profiles.read_profiles(day)
        sent = profile[profile["audiences"].map(len).gt(0) & consent.reachable(profile)]
        lists = recommended.lists(day)
        assert len(sent) > 100 and all(len(lists.get(int(c), [])) == per_member for c in sent["customer_id"]), day
        jobs = summary["activation"][day.isoformat()]["recommendations"]
        assert jobs["users"]["answered"] == jobs["users"]["lines"] >= len(sent), day
        similar = sqljobs.read_partition(recommended.similar_dir(day)).to_pandas()
        assert set(similar["product_id"]) == set(recommended.catalogue(day)), day
    messages = list(segment_traits.read_messages(
        {"files": [storage.url_of(next(paths.deliveries("segment", day)[-1].rglob("messages.jsonl")))]}))
    carried = [m for m in messages if m["traits"]["recommended_products"]]
    assert carried and all(set(m["traits"]["recommended_products"][0]) == {"id", "name", "category", "price"}
                           for m in carried)


def test_the_models_train_within_the_order_history_and_a_baseline_champion_scores(demo_run):
    """(Issue 14) 220 days of orders are too short for churn's separate split (three 90-day horizons): it falls
    back to the stepped layout within the history and says so, so every model and baseline learns from rows with
    a past (the BG/NBD baseline scored 0.5 when its training days lay before the first order). Whatever won, the
    champion (trained vNNNN or baseline bNNNN) scored every customer through the same transform."""
    summary = json.loads((storage.zone("reports", "demo_summary.json")).read_text())
    cfg = get_config().models
    for model, spec in cfg.specs.items():
        card = storage.read_json(storage.resolve(paths.registry(model) / "v0001") / "card.json")
        split, start = card["split"], dt.date.fromisoformat(card["split"]["history_start"])
        assert split["layout"] == ("stepped" if 3 * spec.horizon_days > 220 - cfg.min_history_days else "separate")
        assert all(dt.date.fromisoformat(d) >= start + dt.timedelta(days=cfg.min_history_days)
                   for days in card["split_days"].values() for d in days), model
        assert split["reason"] in storage.location(summary["models"][model]["report"]).read_text().replace(
            "&#x27;", "'"), model
        for kind, metrics in card["baselines"].items():
            assert 0.6 < metrics["auc"] < 1, (model, kind)
        assert min(card["splits"][s]["positive_rate"] for s in card["splits"]) > 0, model
        champion = model_registry.champion(model)
        assert card["serving_champion"] == champion["version"] and champion["kind"] in ("xgboost", "rfm", "bgnbd")
        assert (champion["version"] == "v0001") is card["promoted"], model
        for day in summary["partitions"]:
            scores = sqljobs.read_partition(paths.scores(model, dt.date.fromisoformat(day), "scores"))
            assert set(scores.column("model_version").to_pylist()) == {champion["version"]}, (model, day)


def test_retraining_compares_the_challenger_with_the_champion_on_the_same_rows(demo_run):
    """After the demo, a second training run registers v0002 with the champion's metrics on its test rows
    and promotes it only as `model_registry.decide` says."""
    from tests.conftest import run_dag

    before = {model: model_registry.champion(model)["version"] for model in get_config().models.specs}
    assert run_dag("propensity_training", "2026-11-02").state == "success"

    margin = get_config().models.promotion_margin
    for model in get_config().models.specs:
        card = storage.read_json(storage.resolve(paths.registry(model) / "v0002") / "card.json")
        assert card["champion"]["version"] == before[model] and card["training_partition"] == "2026-11-02"
        expected, _ = model_registry.decide(card["metrics"]["auc"], card["baseline"]["auc"],
                                            (before[model], card["champion"]["metrics"]["auc"]), margin)
        assert card["promoted"] is expected
        after = model_registry.champion(model)["version"]
        assert card["serving_champion"] == after
        if expected:
            assert after == "v0002"
        else:  # the champion stays, or the strongest baseline replaces it as `fallback` says, named in the decision
            replaced, _ = model_registry.fallback(
                (card["baseline"]["name"], card["baseline"]["auc"]),
                (before[model], card["champion"]["kind"], card["champion"]["metrics"]["auc"]), margin)
            assert (after != before[model]) is replaced and (after.startswith("b") or not replaced)


def test_a_past_partition_sends_nothing_unless_forced(demo_run, http_server, monkeypatch):
    """Re-running activation for the older day (as a backfill does) rebuilds its files and sends nothing, even
    with a Segment connection set; force_publish sends it, as a FULL Personalize load."""
    from tests.conftest import run_dag

    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT", json.dumps(
        {"conn_type": "http", "host": http_server.url, "password": "write-key-for-tests"}))
    published = segment_traits.published()
    state = storage.read_json(storage.zone("activation", "personalize", "state", "interactions.json"))

    assert run_dag("audience_activation", "2026-11-01").state == "success"

    summary = storage.read_json(storage.zone("reports", "dt=2026-11-01", "activation", "summary.json"))
    assert summary["decision"]["send"] is False and "older than the newest" in summary["decision"]["reason"]
    assert http_server.received == []
    assert all(status == "not sent" for f in summary["destinations"].values() for status in f["receipts"].values())
    assert segment_traits.published() == published
    assert storage.read_json(storage.zone("activation", "personalize", "state", "interactions.json")) == state

    assert run_dag("audience_activation", "2026-11-01", force_publish=True).state == "success"

    summary = storage.read_json(storage.zone("reports", "dt=2026-11-01", "activation", "summary.json"))
    assert summary["decision"]["send"] is True
    sent = {m["userId"] for r in http_server.received for m in r.json()["batch"]}
    forced = paths.deliveries("segment", dt.date(2026, 11, 1))[-1] / "messages" / "messages.jsonl"
    assert sent and sent == {json.loads(line)["user_id"] for line in forced.read_text().splitlines()}
    assert all(r.headers["Authorization"].startswith("Basic ") for r in http_server.received)
    assert _import_modes(dt.date(2026, 11, 1))["interactions"] == "FULL"  # a past day sent again: the whole dataset


def _import_modes(day: dt.date) -> dict[str, str]:
    """The import mode of each Personalize dataset the day's last attempt planned, from its outbox."""
    from crosschannel.stages.activation import outbox

    attempt = paths.deliveries("personalize", day)[-1].name.removeprefix(paths.ATTEMPT_PREFIX)
    return {d["name"]: d["requests"][0]["params"]["importMode"]
            for d in outbox.documents("personalize", day, attempt) if d["requests"]}


def _tree_digest(folder) -> dict[str, str]:
    import hashlib

    return {storage.relative(p, folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_rerunning_a_delivered_day_sends_nothing_and_keeps_its_delivery_records(demo_run, http_server, monkeypatch):
    """Issue 12, Why 7: a re-run of the day the demo delivered sends nothing (even with a Segment connection),
    says which attempt delivered, and leaves that attempt's files, receipts and messages byte for byte; the
    Personalize state does not move (no switch to FULL)."""
    from tests.conftest import run_dag

    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT", json.dumps(
        {"conn_type": "http", "host": http_server.url, "password": "write-key-for-tests"}))
    day = dt.date(2026, 11, 2)
    delivered = {d: paths.deliveries(d, day) for d in ("pinpoint", "customer_profiles", "personalize", "segment")}
    assert all(len(folders) == 1 for folders in delivered.values()), delivered
    before = {d: _tree_digest(folders[0]) for d, folders in delivered.items()}
    assert any(name.endswith("messages.jsonl") for name in before["segment"])
    state = storage.read_json(storage.zone("activation", "personalize", "state", "interactions.json"))

    assert run_dag("audience_activation", day.isoformat()).state == "success"

    assert http_server.received == []
    assert {d: _tree_digest(folders[0]) for d, folders in delivered.items()} == before
    summary = storage.read_json(storage.zone("reports", f"dt={day}", "activation", "summary.json"))
    for destination, folders in delivered.items():
        figures = summary["destinations"][destination]
        attempt = folders[0].name.removeprefix(paths.ATTEMPT_PREFIX)
        assert figures["sent"] == figures["delivered"] == 0, destination
        assert figures["already_delivered"] and set(figures["already_delivered"].values()) == {attempt}, destination
    assert storage.read_json(storage.zone("activation", "personalize", "state", "interactions.json")) == state


def test_a_destination_not_ready_fails_the_run_before_any_send_or_is_skipped(demo_run, http_server, monkeypatch):
    """Issue 12, Why 8: Personalize's minimum data fails on a forced re-send: the run fails before Pinpoint,
    Customer Profiles or Segment send anything; with activation.skip_unready_destinations the others send and
    Personalize is reported skipped."""
    from tests.conftest import run_dag

    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT", json.dumps(
        {"conn_type": "http", "host": http_server.url, "password": "write-key-for-tests"}))
    monkeypatch.setenv("CROSSCHANNEL__ACTIVATION__PERSONALIZE__MIN_INTERACTIONS", "1000000000")
    get_config.cache_clear()
    day = dt.date(2026, 11, 2)
    attempts = {d: len(paths.deliveries(d, day)) for d in ("pinpoint", "customer_profiles", "segment")}
    published = segment_traits.published()

    assert run_dag("audience_activation", day.isoformat(), force_publish=True).state == "failed"

    assert http_server.received == [] and segment_traits.published() == published
    for destination, count in attempts.items():
        newest = paths.deliveries(destination, day)[-1]
        documents = [storage.read_json(p) for p in (newest / "outbox").glob("*.json")]
        assert len(paths.deliveries(destination, day)) == count + 1 and documents, destination
        assert not any(d["receipt"]["delivered"] for d in documents), destination

    monkeypatch.setenv("CROSSCHANNEL__ACTIVATION__SKIP_UNREADY_DESTINATIONS", "true")
    get_config.cache_clear()
    assert run_dag("audience_activation", day.isoformat(), force_publish=True).state == "success"

    summary = storage.read_json(storage.zone("reports", f"dt={day}", "activation", "summary.json"))
    assert summary["destinations"]["personalize"]["receipts"] == {"skipped": "skipped"}
    assert summary["destinations"]["pinpoint"]["delivered"] > 0
    assert summary["destinations"]["customer_profiles"]["delivered"] == 1
    get_config.cache_clear()


def test_no_contact_leaves_without_its_opt_in_on_the_demo_retailer(demo_run):
    """Consent on real generated data: every email and phone in the day's Customer Profiles upload and Pinpoint
    endpoint files belongs to a customer opted in to that channel in the day's trusted state."""
    import pandas as pd

    from crosschannel.core import sqljobs

    day = dt.date.fromisoformat(demo_run["partition"])
    customers = sqljobs.read_partition(paths.trusted("customers", day)).to_pandas().set_index("customer_id")
    upload = pd.concat(pd.read_csv(p.open("r"), dtype=str) for p in
                       sorted(paths.activation("customer_profiles", day).rglob("*.csv")))
    ids = upload["customer_id"].astype("int64")
    emails, phones = upload["email"].notna().to_numpy(), upload["phone"].notna().to_numpy()
    assert emails.any() and phones.any()
    assert customers.loc[ids[emails], "email_opt_in"].all()
    assert customers.loc[ids[phones], "sms_opt_in"].all()
    endpoints = pd.concat(pd.read_csv(p.open("r"), dtype=str) for p in
                          sorted(paths.activation("pinpoint", day).rglob("*.csv")))
    for channel, opt_in in (("EMAIL", "email_opt_in"), ("SMS", "sms_opt_in")):
        chosen = endpoints[endpoints["ChannelType"] == channel]["User.UserId"].astype("int64")
        assert len(chosen) and customers.loc[chosen, opt_in].all(), channel
