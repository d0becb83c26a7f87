"""The reports view in the Airflow UI (crosschannel.wiring.ui), on the api-server app Airflow's `create_app` builds
with the bundle's plugin: behind Airflow's login (simple auth manager with a user, as a deployment with logins
runs it), confined to the partition's report files, on file:// and s3://."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import AWS_ENV, BUNDLE, configure

DAY = dt.date(2026, 11, 1)
SECRET = "the-secret-outside-the-reports"


def _write_reports(day: dt.date) -> None:
    """One partition's reports as the stages write them, and a file elsewhere in the root that must stay out."""
    from crosschannel.core import paths, storage

    storage.write_json(paths.gate_report(day, "trusted_orders"), {
        "suite": "trusted_orders", "partition": day.isoformat(), "success": True, "rows": 120, "expectations": 19,
        "failed_critical": [], "failed_warning": [],
        "skipped": [{"expectation": "expect_column_max_to_be_between", "column": "last_seen_ts",
                     "reason": "x on last_seen_ts needs NO-EVENTS"}]})
    storage.write_json(paths.gate_report(day, "features_customer"), {
        "suite": "features_customer", "partition": day.isoformat(), "success": False, "rows": 40,
        "expectations": 7, "failed_critical": [{"expectation": "expect_column_values_to_not_be_null",
                                                "column": "customer_id"}], "failed_warning": []})
    storage.write_json(paths.gate_report(day, "scores_churn"), {  # the score gate's failures are sentences
        "suite": "scores_churn", "success": False, "rows": 40, "failed_critical": ["PSI 0.31 above 0.25"]})
    with storage.committing(paths.reports(day, "data_docs")) as site:
        (site / "index.html").write_text("<html>data docs index</html>")
        (site / "static" / "styles").mkdir(parents=True, exist_ok=True)
        (site / "static" / "styles" / "site.css").write_text("body{}")
    report = paths.reports(day, "models", "churn.html")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html>churn model report</html>")
    with storage.committing(paths.registry("churn") / "v0001") as version:
        storage.write_json(version / "card.json", {"version": "v0001", "training_partition": day.isoformat()})
    storage.write_json(paths.reports(day, "activation", "audiences.json"), {
        "partition": day.isoformat(), "holdout_percent": 10.0,
        "audiences": {"win_back": {"treatment": 4840, "control": 528}}, "skipped": {"cart_abandoners": "NEEDS-EVENTS"}})
    storage.write_json(paths.reports(day, "activation", "summary.json"), {
        "decision": {"send": True, "reason": "the newest partition", "attempt": "20261102T000000Z-abc"},
        "destinations": {"customer_profiles": {"enabled": True, "files": 1, "requests": 8, "sent": 0,
                                               "delivered": 1, "receipts": {"upload": "outbox"}},
                         "pinpoint": {"enabled": True, "files": 0, "requests": 0, "sent": 0, "delivered": 0,
                                      "receipts": {"skipped": "skipped"}, "skipped": "NEEDS-CONTACTS"}}})
    storage.write_json(paths.readouts(day, "readouts.json"), {
        "partition": day.isoformat(), "readouts": [{"audience": "win_back", "significant": True}], "skipped": []})
    paths.readouts(day, "readouts.html").write_text("<html>campaign readouts</html>")
    paths.system("secret.txt").parent.mkdir(parents=True, exist_ok=True)
    paths.system("secret.txt").write_text(SECRET)


@pytest.fixture(scope="module")
def airflow_api(airflow_db, tmp_path_factory):
    """Airflow's api-server app with the simple auth manager and one user whose password the test knows."""
    base = tmp_path_factory.mktemp("reports-ui")
    (base / "passwords.json").write_text(json.dumps({"viewer": "viewer-password"}))
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in {
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(base / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": "reports-ui-test-" + "0123456789abcdef" * 4,
            "AIRFLOW__API__SECRET_KEY": "reports-ui-test-key",
        }.items():
            monkeypatch.setenv(key, value)
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        with TestClient(create_app(), base_url="http://127.0.0.1") as client:
            login = client.post("/auth/token", json={"username": "viewer", "password": "viewer-password"})
            assert login.status_code == 201, login.text
            yield {"client": client, "token": login.json()["access_token"]}


@pytest.fixture
def reports_ui(airflow_api, local_env):
    _write_reports(DAY)
    return airflow_api


def _as_user(api) -> dict:
    return {"Authorization": f"Bearer {api['token']}"}


PAGES = ["/crosschannel/", f"/crosschannel/partitions/{DAY}/", f"/crosschannel/partitions/{DAY}/overview.json",
         f"/crosschannel/partitions/{DAY}/gates/trusted_orders.json",
         f"/crosschannel/partitions/{DAY}/data_docs/index.html", "/crosschannel/runs/retail_ingest/manual__1"]


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_request_is_refused(reports_ui, page):
    client = reports_ui["client"]

    anonymous = client.get(page, follow_redirects=False)
    forged = client.get(page, headers={"Authorization": "Bearer not-a-token"}, follow_redirects=False)
    forged_cookie = client.get(page, cookies={"_token": "not-a-token"}, follow_redirects=False)

    assert anonymous.status_code == 401 and "win_back" not in anonymous.text
    assert forged.status_code == 403 and forged_cookie.status_code == 403


def test_a_logged_in_user_sees_the_partition_with_the_ui_cookie_or_a_bearer_token(reports_ui):
    client = reports_ui["client"]

    with_cookie = client.get(f"/crosschannel/partitions/{DAY}/", cookies={"_token": reports_ui["token"]})
    with_bearer = client.get(f"/crosschannel/partitions/{DAY}/", headers=_as_user(reports_ui))
    index = client.get("/crosschannel/", headers=_as_user(reports_ui))

    assert with_cookie.status_code == 200 and with_bearer.text == with_cookie.text
    page = with_cookie.text
    for shown in ("trusted_orders", "features_customer", "expect_column_values_to_not_be_null customer_id",
                  "PSI 0.31 above 0.25",
                  "data_docs/index.html", "models/churn.html", "models/churn/v0001.json", "win_back", "4840", "528",
                  "customer_profiles", "upload: outbox", "readouts/readouts.html", "1 readouts (1 significant)",
                  "1 skipped: needs NO-EVENTS", "cart_abandoners: NEEDS-EVENTS", "skipped: skipped (NEEDS-CONTACTS)"):
        assert shown in page, shown
    assert f"partitions/{DAY}/" in index.text


def test_every_report_file_is_served_from_its_fixed_place(reports_ui):
    client = reports_ui["client"]
    get = {name: client.get(f"/crosschannel/partitions/{DAY}/{name}", headers=_as_user(reports_ui))
           for name in ("gates/features_customer.json", "data_docs/index.html", "data_docs/static/styles/site.css",
                        "models/churn.html", "models/churn/v0001.json", "activation/audiences.json",
                        "activation/summary.json", "readouts/readouts.json", "readouts/readouts.html")}

    assert {name: r.status_code for name, r in get.items() if r.status_code != 200} == {}
    assert get["gates/features_customer.json"].json()["success"] is False
    assert "data docs index" in get["data_docs/index.html"].text
    assert get["data_docs/index.html"].headers["content-type"].startswith("text/html")
    assert get["data_docs/static/styles/site.css"].headers["content-type"].startswith("text/css")
    assert get["models/churn/v0001.json"].json()["training_partition"] == DAY.isoformat()
    assert get["activation/audiences.json"].json()["audiences"]["win_back"] == {"treatment": 4840, "control": 528}
    assert "campaign readouts" in get["readouts/readouts.html"].text


TRAVERSALS = [
    "data_docs/../../../system/secret.txt", "data_docs/..%2F..%2F..%2Fsystem%2Fsecret.txt",
    "data_docs/%2e%2e/%2e%2e/%2e%2e/system/secret.txt", "data_docs/%252e%252e%252f%252e%252e%252fsystem%252fsecret.txt",
    "data_docs/%2Fetc%2Fpasswd", "data_docs//etc/passwd", "data_docs/_SUCCESS/../../../system/secret.txt",
    "gates/..%2F..%2F..%2Fsystem%2Fsecret.txt", "gates/%2Fetc%2Fpasswd", "models/..%2Fchurn.html",
    "models/churn/..%2F..%2F..%2F..%2Fsystem%2Fsecret.txt", "activation/..%2F..%2F..%2Fsystem%2Fsecret.txt",
    "readouts/%2e%2e%2f%2e%2e%2f%2e%2e%2fsystem%2fsecret.txt", "data_docs/.%2e/.%2e/.%2e/system/secret.txt",
    "data_docs/static\\..\\..\\..\\system\\secret.txt", "data_docs/index.html%00.css", "system/secret.txt",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_path_outside_the_partitions_reports_is_refused(reports_ui, name):
    client = reports_ui["client"]

    answer = client.get(f"/crosschannel/partitions/{DAY}/{name}", headers=_as_user(reports_ui))

    assert answer.status_code in (400, 404), (name, answer.status_code)
    assert SECRET not in answer.text and "root:" not in answer.text


@pytest.mark.parametrize("day", ["..", "..%2F..%2Fsystem", "%2Fetc", "2026-13-01", "2026-11-01%2F..%2F..",
                                 "dt=2026-11-01"])
def test_a_day_that_is_not_a_partition_is_refused(reports_ui, day):
    answer = reports_ui["client"].get(f"/crosschannel/partitions/{day}/gates/trusted_orders.json",
                                      headers=_as_user(reports_ui))

    assert answer.status_code in (400, 404) and SECRET not in answer.text


def _add_run(dag_id: str, run_id: str, *, partition_key=None, conf=None, tags=("crosschannel",)) -> None:
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if session.scalar(select(DagBundleModel).where(DagBundleModel.name == "reports-ui")) is None:
            session.add(DagBundleModel(name="reports-ui"))
            session.flush()
        if session.get(DagModel, dag_id) is None:
            session.add(DagModel(dag_id=dag_id, bundle_name="reports-ui"))
            session.flush()
            session.add_all(DagTag(name=tag, dag_id=dag_id) for tag in tags)
        session.add(DagRun(dag_id=dag_id, run_id=run_id, run_type="manual", partition_key=partition_key, conf=conf))


def test_a_dag_runs_reports_tab_opens_its_partition(reports_ui):
    client = reports_ui["client"]
    _add_run("retail_trusted", "asset_triggered__reports_ui", partition_key=DAY.isoformat())
    _add_run("retail_trusted", "manual__reports_ui", conf={"partition": DAY.isoformat()})
    _add_run("someone_elses_dag", "manual__reports_ui", conf={"partition": DAY.isoformat()}, tags=("other",))

    by_key = client.get("/crosschannel/runs/retail_trusted/asset_triggered__reports_ui", headers=_as_user(reports_ui),
                        follow_redirects=False)
    by_conf = client.get("/crosschannel/runs/retail_trusted/manual__reports_ui", headers=_as_user(reports_ui))
    unknown = client.get("/crosschannel/runs/retail_trusted/no_such_run", headers=_as_user(reports_ui))
    foreign = client.get("/crosschannel/runs/someone_elses_dag/manual__reports_ui", headers=_as_user(reports_ui))

    assert by_key.status_code == 307 and by_key.headers["location"] == f"/crosschannel/partitions/{DAY}/"
    assert by_conf.status_code == 200 and "win_back" in by_conf.text
    assert unknown.status_code == 404 and foreign.status_code == 404


def test_the_plugin_puts_the_views_in_the_nav_and_on_the_dag_run_page(reports_ui):
    plugins = reports_ui["client"].get("/api/v2/plugins", headers=_as_user(reports_ui)).json()["plugins"]

    (ours,) = [p for p in plugins if p["name"] == "crosschannel"]
    views = {v["destination"]: v["href"] for v in ours["external_views"]}
    assert views == {"nav": "/crosschannel/", "dag_run": "/crosschannel/runs/{DAG_ID}/{RUN_ID}"}
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/crosschannel"]


def test_the_reports_are_read_from_s3_on_the_aws_target(airflow_api, moto_server, tmp_path, monkeypatch):
    import boto3

    from tests.conftest import empty_bucket

    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="reports-ui")
    configure(monkeypatch, tmp_path, **{**AWS_ENV, "CROSSCHANNEL__STORAGE__ROOT": "s3://reports-ui/lake"})
    try:
        _write_reports(DAY)
        client = airflow_api["client"]

        page = client.get(f"/crosschannel/partitions/{DAY}/", headers=_as_user(airflow_api))
        docs = client.get(f"/crosschannel/partitions/{DAY}/data_docs/index.html", headers=_as_user(airflow_api))
        escape = client.get(f"/crosschannel/partitions/{DAY}/data_docs/..%2F..%2F..%2Fsystem%2Fsecret.txt",
                            headers=_as_user(airflow_api))

        assert page.status_code == 200 and "win_back" in page.text and "models/churn/v0001.json" in page.text
        assert docs.status_code == 200 and "data docs index" in docs.text
        assert escape.status_code == 404 and SECRET not in escape.text
        assert s3.get_object(Bucket="reports-ui", Key="lake/system/secret.txt")["Body"].read().decode() == SECRET
    finally:
        from crosschannel.core.config import get_config

        get_config.cache_clear()
        empty_bucket(s3, "reports-ui")


def test_the_plugin_is_cheap_to_import_for_every_airflow_component():
    code = ("import sys, crosschannel_plugin; "
            "print(sorted(m for m in ('crosschannel.wiring.ui.app', 'airflow.api_fastapi.core_api.security', "
            "'fastapi') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=BUNDLE, env={**os.environ, "PYTHONPATH": str(BUNDLE / "plugins")})

    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


@pytest.mark.parametrize("kind,name", [
    ("data_docs", "../../../system/secret.txt"), ("data_docs", "/etc/passwd"), ("data_docs", "static/../../x"),
    ("data_docs", "static//styles"), ("data_docs", "%2e%2e/x"), ("data_docs", ".hidden"), ("data_docs", ""),
    ("gates", "../../system/secret.json"), ("gates", "/etc/passwd.json"), ("models", "churn/../../x.json"),
    ("models", "nope.html"), ("models", "churn/v0002.json"), ("activation", "../summary.json"),
    ("readouts", "groups/_SUCCESS"), ("system", "secret.txt"), ("../system", "secret.txt"),
])
def test_locate_maps_only_onto_the_fixed_places(local_env, kind, name):
    from crosschannel.wiring.ui import reports

    _write_reports(DAY)

    assert reports.locate(DAY, kind, name) is None
