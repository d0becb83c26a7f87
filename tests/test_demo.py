"""`make demo`'s job on a small retailer: the chain runs and the JSON summary holds the promised figures."""

from __future__ import annotations

import json

import pytest

from crosschannel import demo, storage
from tests.conftest import configure

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, airflow_db):
    """The demo's chain for two days on a small retailer (history long enough for the models' split)."""
    from crosschannel.config import get_config

    with pytest.MonkeyPatch.context() as monkeypatch:
        configure(monkeypatch, tmp_path_factory.mktemp("demo"), CROSSCHANNEL__GENERATOR__CUSTOMERS="600",
                  CROSSCHANNEL__GENERATOR__HISTORY_DAYS="220", CROSSCHANNEL__MODELS__MAX_TRIALS="2")
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
    assert docs["data_docs"].endswith("/data_docs/index.html")
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


def test_retraining_compares_the_challenger_with_the_champion_on_the_same_rows(demo_run):
    """After the demo, a second training run registers v0002 with the champion's metrics on its test rows
    and promotes it only as `models.decide` says."""
    from crosschannel import models
    from crosschannel.config import get_config
    from tests.conftest import run_dag

    assert run_dag("propensity_training", "2026-11-02").state == "success"

    margin = get_config().models.promotion_margin
    for model in get_config().models.specs:
        card = storage.read_json(models.registry_dir(model) / "v0002" / "card.json")
        assert card["champion"]["version"] == "v0001" and card["training_partition"] == "2026-11-02"
        expected, _ = models.decide(card["metrics"]["auc"], card["baseline"]["auc"],
                                    ("v0001", card["champion"]["metrics"]["auc"]), margin)
        assert card["promoted"] is expected
        assert models.champion(model)["version"] == ("v0002" if expected else "v0001")
