"""`make demo`'s job on a small retailer: the chain runs and the JSON summary holds the promised figures."""

from __future__ import annotations

import json

import pytest

from crosschannel import demo, storage
from tests.conftest import configure

pytestmark = pytest.mark.e2e


def test_demo_runs_the_chain_and_writes_its_summary(tmp_path, monkeypatch, airflow_db, capsys):
    configure(monkeypatch, tmp_path, CROSSCHANNEL__GENERATOR__CUSTOMERS="300",
              CROSSCHANNEL__GENERATOR__HISTORY_DAYS="30")

    demo.run(days=2)

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
    printed = capsys.readouterr().out
    assert "Demo finished in" in printed and "Summary JSON:" in printed
