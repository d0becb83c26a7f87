"""Readable gates: a failure names the keys of its rows (message and result JSON), GX stays quiet in the logs,
and Data Docs render offline, labelled with the partition and the table, through the reports view too."""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import re
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import BUNDLE
from tests.test_reports_ui import _as_user, airflow_api  # noqa: F401 (the reports view's app, logged in)

DAY = dt.date(2026, 11, 2)
SUITES = sorted((BUNDLE / "include" / "expectations").glob("*.json"))
_LINK = re.compile(r"""\b(?:src|href)=["']([^"'#]+)["']""")


def _orders(rows: int = 4, **bad: dict) -> pd.DataFrame:
    """Orders 5001.. that pass trusted_orders; `bad` maps a column to {order_id: value} to plant."""
    at = pd.Timestamp(f"{DAY} 10:00")
    frame = pd.DataFrame({
        "order_id": range(5001, 5001 + rows), "customer_id": [f"c{i % 2}" for i in range(rows)],
        "store_id": [1] * rows, "channel": ["web"] * rows, "status": ["placed"] * rows, "subtotal": [10.0] * rows,
        "discount": [0.0] * rows, "total": [10.0] * rows, "order_ts": [at] * rows, "updated_at": [at] * rows})
    for column, values in bad.items():
        for order_id, value in values.items():
            frame.loc[frame["order_id"] == order_id, column] = value
    return frame


def _lines(orders: pd.DataFrame) -> pd.DataFrame:
    """Two lines per order, and one line of an order that does not exist (999999999, line 2)."""
    ids = [*orders["order_id"].repeat(2), 999_999_999]
    return pd.DataFrame({"order_id": ids, "line_no": [1, 2] * len(orders) + [2], "product_id": 1, "quantity": 1,
                         "unit_price": 10.0, "discount": 0.0, "updated_at": pd.Timestamp(f"{DAY} 10:00")})


def _keys_of(orders: pd.DataFrame):
    known = {"customers": ["c0", "c1"], "stores": [1], "products": [1], "orders": list(orders["order_id"])}
    return lambda table, key: known[table]


def _gate(orders: pd.DataFrame):
    from crosschannel.core import gates

    run = gates.GateRun(DAY)
    results = [run.validate("trusted_orders", orders, keys_of=_keys_of(orders), table="trusted/orders"),
               run.validate("trusted_order_lines", _lines(orders), keys_of=_keys_of(orders),
                            table="trusted/order_lines")]
    return run, results


def _failure(result, column: str, expectation: str) -> dict:
    (found,) = [f for f in result.failed_critical + result.failed_warning
                if f["column"] == column and f["expectation"] == expectation]
    return found


def test_a_failure_names_the_keys_of_its_rows_in_the_message_and_the_json(local_env):
    from crosschannel.core import gates, paths, storage

    orders = _orders(channel={5002: "fax"}, store_id={5003: 7}, customer_id={5004: "c9"})
    _, results = _gate(orders)
    for result in results:
        gates.record(result)
    with pytest.raises(gates.GateFailed) as caught:
        gates.enforce(results)

    message = str(caught.value)
    assert ("trusted_orders (partition 2026-11-02), column channel: expect_column_values_to_be_in_set "
            "{'value_set': ['store', 'web', 'app']} failed on 1 row(s); sample: ['fax'] at order_id [5002]") in message
    assert ("column store_id: expect_column_values_to_be_keys_of {'keys_table': 'stores', 'keys_column': "
            "'store_id'} failed on 1 row(s); sample: [7] at order_id [5003]") in message
    assert ("trusted_order_lines (partition 2026-11-02), column order_id: expect_column_values_to_be_keys_of "
            "{'keys_table': 'orders', 'keys_column': 'order_id'} failed on 1 row(s); sample: [999999999] "
            "at (order_id, line_no) [(999999999, 2)]") in message
    saved = storage.read_json(paths.gate_report(DAY, "trusted_orders"))
    assert saved["key"] == ["order_id"] and saved["success"] is False
    assert _failure(results[0], "channel", "expect_column_values_to_be_in_set")["keys"] == [{"order_id": 5002}]
    (warning,) = saved["failed_warning"]  # the dangling customer is reported, with its order
    assert (warning["column"], warning["sample"], warning["keys"]) == ("customer_id", ["c9"], [{"order_id": 5004}])
    lines = storage.read_json(paths.gate_report(DAY, "trusted_order_lines"))
    assert lines["failed_critical"][0]["keys"] == [{"order_id": 999999999, "line_no": 2}]


def test_the_sample_of_keys_is_capped_and_a_check_of_the_key_itself_is_not_repeated(local_env):
    from crosschannel.core import gates

    orders = _orders(rows=9, total=dict.fromkeys(range(5001, 5010), -1.0))
    orders.loc[orders["order_id"] == 5009, "order_id"] = 5008
    orders.index = pd.Index([7] * len(orders), name="loaded_as")  # the gate finds rows whatever the index
    _, (result, _) = _gate(orders)

    negative = _failure(result, "total", "expect_column_values_to_be_between")
    assert negative["unexpected_count"] == 9 and len(negative["keys"]) == gates.checks().SAMPLE_SIZE
    assert negative["keys"] == [{"order_id": i} for i in range(5001, 5001 + gates.checks().SAMPLE_SIZE)]
    with pytest.raises(gates.GateFailed) as caught:
        gates.enforce([result])
    message = str(caught.value)
    assert "expect_column_values_to_be_unique failed on 2 row(s); sample: [5008, 5008]" in message
    assert "sample: [5008, 5008] at" not in message  # the values are the keys


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_every_suite_names_its_tables_key_and_checks_it_is_one(path):
    suite = json.loads(path.read_text())
    key = suite["meta"]["key"]

    unique = [e["kwargs"].get("column_list") or [e["kwargs"].get("column")] for e in suite["expectations"]
              if e["type"] in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")]
    not_null = {e["kwargs"]["column"] for e in suite["expectations"]
                if e["type"] == "expect_column_values_to_not_be_null"}
    assert key in unique, f"{path.name}: meta.key {key} has no uniqueness expectation"
    assert set(key) <= not_null, f"{path.name}: a key column may be null"


def test_gx_logs_nothing_below_warning_and_the_gates_error_stays(local_env):
    """Under a logging setup at INFO (as a scheduler's task), GX's import and run log nothing of their own."""
    script = """
import datetime as dt, logging
logging.basicConfig(level=logging.INFO)
import pandas as pd
from crosschannel.core import gates
run = gates.GateRun(dt.date(2026, 11, 2))
frame = pd.DataFrame({"store_id": [1, 3, 3], "name": "n", "region": "north", "city": "c",
                      "opened_date": pd.Timestamp("2020-01-01"), "updated_at": pd.Timestamp("2026-11-01")})
result = run.validate("trusted_stores", frame, table="trusted/stores")
run.publish_docs()
gates.enforce([result])
"""
    env = {**os.environ, "PYTHONPATH": str(BUNDLE / "plugins"), "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)

    output = done.stdout + done.stderr
    assert done.returncode == 1 and "GateFailed: critical expectations failed:" in output
    assert "column store_id: expect_column_values_to_be_unique failed on 2 row(s); sample: [3, 3]" in output
    chatter = [line for line in output.splitlines() if "great_expectations" in line and "Traceback" not in line
               and not line.startswith(" ")]
    assert not chatter, "\n".join(chatter[:20])


def _site(day: dt.date):
    from crosschannel.core import paths, storage

    site = storage.resolve(paths.reports(day, "data_docs"))
    return site, {str(p.relative_to(site)): p for p in site.rglob("*") if p.is_file()}


def _text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_data_docs_render_offline_labelled_with_the_partition_and_the_table(local_env):
    from crosschannel.core import data_docs

    run, _ = _gate(_orders(channel={5002: "fax"}))
    run.publish_docs()
    _, files = _site(DAY)

    pages = {name: path.read_text() for name, path in files.items() if name.endswith(".html")}
    assert "index.html" in pages
    validation = "validations/trusted_orders/2026-11-02/20261102T000000.000000Z/trusted-orders.html"
    assert validation in pages, sorted(pages)
    for name, page in pages.items():
        assert data_docs.remote_assets(page) == [], name
        assert "newsletter" not in page and "_references_" not in page and "__none__" not in page, name
        for link in _LINK.findall(page):
            if link.startswith(("http://", "https://")):
                assert link == "https://greatexpectations.io", f"{name} links {link}"  # the credit, not a load
                continue
            assert posixpath.normpath(posixpath.join(posixpath.dirname(name), link)) in files, f"{name}: {link}"
    for name, path in files.items():  # the fonts and images the vendored stylesheets load
        for link in re.findall(r"url\(([^)\"':]+)\)", path.read_text(errors="ignore")) if name.endswith(".css") else []:
            assert posixpath.normpath(posixpath.join(posixpath.dirname(name), link)) in files, f"{name}: {link}"
    rows = re.findall(r"'run_time': '([^']*)', .*?'run_name': '([^']*)'.*?'_table_row_link_path': '([^']*)'.*?"
                      r"'asset_name': '([^']*)'", pages["index.html"])  # the index table's data (bootstrap-table)
    assert sorted(rows) == [
        ("2026-11-02 00:00:00 UTC", "2026-11-02", link, f"trusted/{table}") for link, table in sorted(
            [(validation, "orders"), (validation.replace("orders", "order_lines"), "order_lines")])]
    assert all(link in files for _, _, link, _ in rows)
    page = _text(pages[validation])
    assert "Data asset: trusted/orders" in page and "Run Name 2026-11-02 Run Time 2026-11-02T00:00:00Z" in page
    assert "Unexpected Value Count order_id fax 1 5002" in page  # the failing row's key beside its value
    assert "store_id values must be keys of stores.store_id of the same partition (or null)" in page


def test_every_cdn_address_of_gx_has_a_vendored_copy():
    """A GX upgrade that loads something new from a CDN fails here (add it to data_docs.CDN and vendor it)."""
    import great_expectations

    from crosschannel.core import data_docs

    templates = os.path.join(os.path.dirname(great_expectations.__file__), "render", "view", "templates")
    loaded = set()
    for name in os.listdir(templates):
        with open(os.path.join(templates, name)) as handle:
            loaded |= set(re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)\"", handle.read()))
    assert loaded and loaded <= set(data_docs.CDN), sorted(loaded - set(data_docs.CDN))
    assert all((data_docs.VENDOR / copy).is_file() for copy in data_docs.CDN.values())


def test_the_reports_view_serves_a_generated_site_whole(airflow_api, local_env):  # noqa: F811
    """Every page of a real site and everything it links to, through the view (MIME types a browser accepts
    with nosniff)."""
    run, _ = _gate(_orders(channel={5002: "fax"}))
    run.publish_docs()
    _, files = _site(DAY)
    client, base = airflow_api["client"], f"/crosschannel/partitions/{DAY}/data_docs/"

    wanted = set()
    for name in (n for n in files if n.endswith(".html")):
        page = client.get(base + name, headers=_as_user(airflow_api))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), name
        wanted |= {posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
                   for link in _LINK.findall(page.text) if not link.startswith("http")}
    for name in sorted(wanted):
        served = client.get(base + name, headers=_as_user(airflow_api))
        assert served.status_code == 200, name
        kind = served.headers["content-type"]
        assert not name.endswith(".js") or "javascript" in kind, (name, kind)
        assert not name.endswith(".css") or kind.startswith("text/css"), (name, kind)


@pytest.mark.parametrize(("order_day", "says"), [
    (dt.date(1996, 5, 1), "the newest order is more than 30 days before it (is the partition right"),
    (dt.date(2026, 12, 24), "the partition is before the data's time range"),
])
def test_a_partition_outside_the_datas_time_range_fails_saying_so(local_env, order_day, says):
    """Issue 14, item 7: a partition decades after the data, or before it, is refused with the reason, not
    published or failed with a bare expectation name."""
    from crosschannel.core import gates

    at = pd.Timestamp(f"{order_day} 10:00")
    orders = _orders().assign(order_ts=at, updated_at=at)
    run = gates.GateRun(DAY)
    result = run.validate("trusted_orders", orders, keys_of=_keys_of(orders), table="trusted/orders")
    with pytest.raises(gates.GateFailed, match="column order_ts: expect_column_max_to_be_between") as caught:
        gates.enforce([result])
    assert says in str(caught.value)
    assert gates.GateRun(DAY).validate("trusted_orders", _orders(), keys_of=_keys_of(_orders()),
                                       table="trusted/orders").success  # an order on the day itself passes


def test_the_gates_frame_compares_fast_dtypes_and_judges_as_arrow_did(local_env):
    """Decimals reach GX as float64 and timestamps as datetime64[ns] (compared vectorised); a timestamp out of
    nanosecond range stays as it was. Either way the gate finds the same failures with equal samples."""
    import decimal

    import pyarrow as pa

    from crosschannel.core import gates

    orders = pa.Table.from_pandas(_orders(rows=5), preserve_index=False)
    orders = orders.set_column(orders.schema.get_field_index("total"), "total", pa.array(
        [decimal.Decimal(v) for v in ("10.00", "-5.00", "10.00", "10.00", "10.00")], pa.decimal128(12, 2)))
    far = orders.column("order_ts").to_pylist()
    far[2] = dt.datetime(9999, 1, 1)
    spoiled = orders.set_column(orders.schema.get_field_index("order_ts"), "order_ts",
                                pa.array(far, pa.timestamp("us")))

    fast = gates.frame_of(orders)
    assert str(fast["total"].dtype) == "float64" and str(fast["order_ts"].dtype) == "datetime64[ns]"
    assert str(gates.frame_of(spoiled)["order_ts"].dtype) != "datetime64[ns]"  # 9999 does not fit: left as is
    for table in (orders, spoiled):
        verdicts = []
        for frame in (gates.frame_of(table), table.to_pandas()):
            result = gates.GateRun(DAY).validate("trusted_orders", frame, keys_of=_keys_of(_orders(rows=5)),
                                                 table="trusted/orders")
            verdicts.append(sorted((f["expectation"], f["column"], f["unexpected_count"], f["sample"],
                                    str(f["keys"]), str(f["observed"])) for f in result.failed_critical))
        assert verdicts[0] == verdicts[1]  # a sample of -5.0 equals Decimal("-5.00"), and reads better
        assert ("expect_column_values_to_be_between", "total", 1, [-5.0], "[{'order_id': 5002}]", "None") \
            in verdicts[0]
    assert any(v[1] == "order_ts" and "9999" in v[5] for v in verdicts[0])


def test_a_gate_job_finds_the_same_on_pandas_in_the_worker_and_on_spark_in_glue(local_env, spark):
    """The gate job of the local target (GX Core on pandas, crosschannel.core.gates.run_local) and of aws (GX Core
    on Spark in the Glue script, run_sql.py --gates_path) on the same committed candidates: the same failures,
    counts, samples, keys of their rows and observed values, references checked against the same keys."""
    import pyarrow as pa

    from crosschannel.core import gates, paths, sqljobs, storage
    from crosschannel.stages.trusted import publish
    from tests.conftest import glue_script

    orders = _orders(rows=9, channel={5002: "fax"}, store_id={5003: 7}, customer_id={5004: "c9"},
                     total={5005: -1.0, 5006: -2.0})
    orders.loc[orders["order_id"] == 5009, "order_id"] = 5008
    suites = {}
    for name, frame in {"orders": orders, "order_lines": _lines(orders)}.items():
        candidate = paths.candidate(name, DAY, run="r")
        sqljobs.write_partition(candidate, pa.Table.from_pandas(frame, preserve_index=False))
        suites[f"trusted_{name}"] = (candidate, paths.trusted(name, DAY))
    for name, keys in {"customers": ["c0", "c1"], "stores": [1], "products": [1]}.items():
        sqljobs.write_partition(paths.trusted(name, DAY), pa.table({f"{name[:-1]}_id": keys}))

    (args,) = publish.plan_gate(DAY, suites, "trusted", "r")
    assert gates.run_local(args) == 2
    on_spark = paths.candidate("gate_on_spark", DAY, zone_name="reports")
    assert glue_script().run_gates(spark, args["--gates_path"], storage.url_of(on_spark)) == 2

    def verdicts(folder):
        found = {}
        for result in gates.job_results(folder):
            checked = gates.GateRun(DAY).add(result)
            found[checked.suite] = (checked.rows, sorted(
                (severity, f["expectation"], str(f["column"]), f["unexpected_count"], sorted(map(str, f["sample"])),
                 sorted(map(str, f["keys"])), str(f["observed"]))
                for severity, failures in (("critical", checked.failed_critical), ("warning", checked.failed_warning))
                for f in failures))
        return found

    local, glue = verdicts(publish.results_folder(DAY, "trusted", "r")), verdicts(on_spark)
    assert local == glue
    failed = {(f[1], f[2]) for f in local["trusted_orders"][1]}
    assert {("expect_column_values_to_be_in_set", "channel"), ("expect_column_values_to_be_keys_of", "store_id"),
            ("expect_column_values_to_be_keys_of", "customer_id"), ("expect_column_values_to_be_between", "total"),
            ("expect_column_values_to_be_unique", "order_id")} <= failed
    (dangling,) = [f for f in local["trusted_order_lines"][1] if f[1] == "expect_column_values_to_be_keys_of"]
    assert dangling[4:6] == (["999999999"], ["{'order_id': 999999999, 'line_no': 2}"])


def test_a_candidate_written_again_after_its_gate_job_is_not_published(local_env):
    """A merge job cleared and run again after check_trusted: gate_trusted refuses to publish what no gate checked,
    and publishes once the gate job has run again."""
    import pyarrow as pa

    from crosschannel.core import gates, paths, sqljobs, storage
    from crosschannel.stages.trusted import merge, publish

    candidate, final = paths.candidate("stores", DAY, run="r"), paths.trusted("stores", DAY)
    stores = pa.table({"store_id": [1, 2], "name": ["a", "b"], "region": ["north", "south"], "city": ["c", "d"],
                       "opened_date": [dt.date(2020, 1, 1)] * 2, "updated_at": [dt.datetime(2026, 11, 1)] * 2})
    sqljobs.write_partition(candidate, stores)
    suites = {"trusted_stores": (candidate, final)}
    (job,) = publish.plan_gate(DAY, suites, "trusted", "r")
    gates.run_local(job)
    sqljobs.write_partition(candidate, stores.slice(0, 1))  # written again: one store

    with pytest.raises(merge.TrustedInputError, match="written again after its gate job checked"):
        publish.gate_and_publish(DAY, suites, "trusted", "r", "data_docs")
    assert not storage.is_committed(final)

    (job,) = publish.plan_gate(DAY, suites, "trusted", "r")
    gates.run_local(job)
    assert publish.gate_and_publish(DAY, suites, "trusted", "r", "data_docs")["rows"] == {"trusted_stores": 1}
    assert storage.is_committed(final) and not publish.results_folder(DAY, "trusted", "r").exists()


def _gated(run: str, rows: int = 2):
    """The stores and inventory candidates of a run (the store names say which run), checked by its gate job."""
    import pyarrow as pa

    from crosschannel.core import gates, paths, sqljobs
    from crosschannel.stages.trusted import publish

    stamp = [dt.datetime(2026, 11, 1)] * rows
    tables = {
        "stores": pa.table({"store_id": list(range(1, rows + 1)), "name": [run] * rows, "region": ["north"] * rows,
                            "city": ["c"] * rows, "opened_date": [dt.date(2020, 1, 1)] * rows, "updated_at": stamp}),
        "inventory": pa.table({"store_id": list(range(1, rows + 1)), "product_id": [10] * rows, "on_hand": [5] * rows,
                               "updated_at": stamp})}
    sqljobs.write_partition(paths.trusted("products", DAY), pa.table({"product_id": [10]}))  # inventory's reference
    suites = {}
    for name, table in tables.items():
        candidate = paths.candidate(name, DAY, run=run)
        sqljobs.write_partition(candidate, table)
        suites[f"trusted_{name}"] = (candidate, paths.trusted(name, DAY))
    (job,) = publish.plan_gate(DAY, suites, "trusted", run)
    gates.run_local(job)
    return suites


def _published_by(suites) -> set:
    from crosschannel.core import sqljobs

    return set(sqljobs.read_partition(suites["trusted_stores"][1]).column("name").to_pylist())


@pytest.mark.parametrize("crash", ["promote", "write_json", "remove"])
def test_a_gate_publish_killed_at_any_point_is_finished_by_its_retry(local_env, monkeypatch, crash):
    """The worker lost after the n-th publish, record write or clean-up step (every n the publish makes): the retry
    publishes every candidate of the run, or returns the summary when all were published, and cleans up; it never
    refuses for a candidate the lost attempt removed nor leaves a mixed day."""
    from crosschannel.core import storage
    from crosschannel.stages.trusted import publish

    real = getattr(storage, crash)
    calls = []
    monkeypatch.setattr(storage, crash, lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    publish.gate_and_publish(DAY, _gated("count"), "trusted", "count", "data_docs")
    total = len(calls)
    assert total >= 2

    lost = 0
    for nth in range(1, total + 1):
        run, made = f"{crash}-{nth}", []

        def killed(*args, nth=nth, made=made, **kwargs):
            real(*args, **kwargs)
            made.append(1)
            if len(made) == nth:
                raise SystemExit("worker lost")

        suites = _gated(run)
        monkeypatch.setattr(storage, crash, killed)
        try:
            publish.gate_and_publish(DAY, suites, "trusted", run, "data_docs")
        except SystemExit:
            lost += 1
        monkeypatch.setattr(storage, crash, real)

        summary = publish.gate_and_publish(DAY, suites, "trusted", run, "data_docs")
        assert summary["rows"] == {"trusted_stores": 2, "trusted_inventory": 2}, (crash, nth)
        assert _published_by(suites) == {run}, (crash, nth)
        assert not any(c.exists() for c, _ in suites.values()), (crash, nth)
        assert not publish.results_folder(DAY, "trusted", run).exists(), (crash, nth)
    assert lost >= 2  # the worker was lost at every call a later run made (the first publish of the day makes more)


def test_a_gate_job_run_again_after_a_publish_publishes_its_new_candidates(local_env, monkeypatch):
    """The run published (its record says done) and was lost before cleaning up; an operator clears it: new
    candidates, the gate job again. The publish follows the new gate job, not the old record."""
    from crosschannel.core import sqljobs, storage
    from crosschannel.stages.trusted import publish

    suites = _gated("r")
    real = storage.remove
    monkeypatch.setattr(storage, "remove", lambda *a, **k: (_ for _ in ()).throw(SystemExit("worker lost")))
    with pytest.raises(SystemExit):
        publish.gate_and_publish(DAY, suites, "trusted", "r", "data_docs")
    monkeypatch.setattr(storage, "remove", real)
    assert sqljobs.read_partition(suites["trusted_stores"][1]).num_rows == 2

    suites = _gated("r", rows=3)
    assert publish.gate_and_publish(DAY, suites, "trusted", "r", "data_docs")["rows"]["trusted_stores"] == 3
    assert sqljobs.read_partition(suites["trusted_stores"][1]).num_rows == 3


def test_a_retry_does_not_publish_over_a_day_another_run_published_meanwhile(local_env, monkeypatch):
    from crosschannel.core import storage
    from crosschannel.stages import trusted
    from crosschannel.stages.trusted import publish

    older = _gated("older")
    real, made = storage.promote, []

    def killed(*args, **kwargs):
        real(*args, **kwargs)
        made.append(1)
        raise SystemExit("worker lost")

    monkeypatch.setattr(storage, "promote", killed)
    with pytest.raises(SystemExit):
        publish.gate_and_publish(DAY, older, "trusted", "older", "data_docs")
    monkeypatch.setattr(storage, "promote", real)
    publish.gate_and_publish(DAY, _gated("newer"), "trusted", "newer", "data_docs")

    with pytest.raises(trusted.merge.TrustedInputError, match="published by another run since this run began"):
        publish.gate_and_publish(DAY, older, "trusted", "older", "data_docs")
    assert _published_by(older) == {"newer"}
