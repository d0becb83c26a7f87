"""Operations end to end with the real scheduler: the local UI's components (bin/airflow-local) run a 2-day
backfill at the head of the chain; every stage runs for every partition through partitioned assets, a second
backfill of the same days gives identical outputs, activation sends nothing, the missed deadlines reach a real
SMTP server and a Slack webhook on loopback, and headless Chromium sees the DAGs and the asset lineage."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import time
import urllib.request

import pytest

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.sim import generator
from tests.conftest import BUNDLE, configure, free_port, run_dag

pytestmark = pytest.mark.e2e

DAYS = ["2026-11-02", "2026-11-03"]  # two: a day after the one run by hand, and a day after a backfilled one
STAGES = ["retail_ingest", "retail_trusted", "propensity_scoring", "audience_activation"]
CHAIN_TIMEOUT = 20 * 60


def _api(port: int, path: str, body: dict | None = None, method: str = "GET") -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _runs(port: int, dag_id: str) -> list[dict]:
    return _api(port, f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def _wait_for_chain(port: int, runs_per_day: int, logs: str) -> None:
    """Until every stage has `runs_per_day` successful runs of each partition; a failed run fails at once."""
    deadline = time.monotonic() + CHAIN_TIMEOUT
    while time.monotonic() < deadline:
        done = True
        for dag_id in STAGES:
            runs = _runs(port, dag_id)
            failed = [r for r in runs if r["state"] == "failed"]
            assert not failed, f"{dag_id} failed: {[(r['dag_run_id'], r.get('partition_key')) for r in failed]}; {logs}"
            for day in DAYS:
                done &= sum(r["state"] == "success" and r.get("partition_key") == day for r in runs) >= runs_per_day
        if done:
            return
        time.sleep(5)
    raise AssertionError(f"the chain did not finish within {CHAIN_TIMEOUT} s; {logs}")


def _outputs() -> dict[str, str]:
    """Hashes of every data file the chain wrote for the backfilled days (outbox documents carry job names with
    the run's hash, reports carry timings: both are left out)."""
    root = storage.root()
    hashes = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = storage.relative(path, root)
        if not any(f"dt={day}" in key for day in DAYS) or key.startswith(("reports/", "system/", "landing/")) \
                or "/outbox/" in key or path.name.startswith("_"):
            continue
        parts, current = key.split("/"), True
        for i, part in enumerate(parts):  # what readers see: a partition's current version, the newest attempt
            folder = root.joinpath(*parts[:i])
            if part.startswith(storage.VERSION_PREFIX):
                current &= storage.version_of(folder) == part
                parts[i] = "_v*"
            elif part.startswith(paths.ATTEMPT_PREFIX):
                current &= max(p.name for p in folder.iterdir() if p.name.startswith(paths.ATTEMPT_PREFIX)) == part
                parts[i] = "attempt=*"
        if current:
            hashes["/".join(parts)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _wait_for_run(port: int, dag_id: str, run_id: str, states: set[str], logs: str) -> dict:
    deadline = time.monotonic() + CHAIN_TIMEOUT
    while True:
        run = _api(port, f"/dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] in states:
            return run
        assert time.monotonic() < deadline, f"{dag_id} {run_id} is still {run['state']}; {logs}"
        time.sleep(2)


def _fail_repair_and_clear(port: int, logs: str) -> dict:
    """On-call's recovery: a run fails on missing data (the day's churn scores unpublished), at once and without
    retries; the data is repaired; clearing the failed run through the REST API (the UI's "Clear only failed
    tasks") re-runs it to success. A failed run keeps its pending deadline: with DAGRUN_QUEUED_AT this clear
    answered HTTP 500 on Airflow 3.3 (apache/airflow#70368)."""
    day = DAYS[0]
    marker = paths.scores("churn", dt.date.fromisoformat(day), "scores") / storage.MARKER
    pointer = marker.read_bytes()
    marker.unlink()  # the fault
    try:
        started = time.monotonic()
        run = _api(port, "/dags/audience_activation/dagRuns", {"logical_date": None, "partition_key": day},
                   method="POST")
        failed = _wait_for_run(port, "audience_activation", run["dag_run_id"], {"failed", "success"}, logs)
        seconds = time.monotonic() - started
        plan = _api(port, f"/dags/audience_activation/dagRuns/{run['dag_run_id']}/taskInstances/plan_audiences")
    finally:
        marker.write_bytes(pointer)  # the repair
    answer = _api(port, f"/dags/audience_activation/dagRuns/{run['dag_run_id']}/clear",
                  {"dry_run": False, "only_failed": True}, method="POST")
    after = _wait_for_run(port, "audience_activation", run["dag_run_id"], {"failed", "success"}, logs)
    return {"run_id": run["dag_run_id"], "failed": failed["state"], "seconds_to_fail": seconds,
            "plan_tries": plan["try_number"], "plan_state": plan["state"], "clear": answer, "after": after["state"]}


def _clear_and_rerun(port: int, logs: str) -> dict:
    """The on-call path through the REST API, as the UI's Clear buttons call it: clear a whole run, then one task
    of another run, and wait for both to succeed again. (A DAGRUN_QUEUED_AT deadline made both answer HTTP 500 on
    Airflow 3.3, apache/airflow#70368.)"""
    def run_of(dag_id: str, day: str) -> dict:
        return next(r for r in _runs(port, dag_id) if r.get("partition_key") == day and r["state"] == "success")

    whole = run_of("audience_activation", DAYS[-1])
    one_task = run_of("propensity_scoring", DAYS[-1])
    answers = {
        "run": _api(port, f"/dags/audience_activation/dagRuns/{whole['dag_run_id']}/clear",
                    {"dry_run": False, "only_failed": False}, method="POST"),
        "task": _api(port, "/dags/propensity_scoring/clearTaskInstances",
                     {"dry_run": False, "dag_run_id": one_task["dag_run_id"], "task_ids": ["gate_scores"],
                      "only_failed": False, "include_downstream": False}, method="POST"),
    }
    deadline = time.monotonic() + CHAIN_TIMEOUT
    for dag_id, before in (("audience_activation", whole), ("propensity_scoring", one_task)):
        while True:
            run = _api(port, f"/dags/{dag_id}/dagRuns/{before['dag_run_id']}")
            if run["state"] == "success" and run["end_date"] != before["end_date"]:
                break
            assert run["state"] != "failed" and time.monotonic() < deadline, f"{dag_id} after clearing: {run}; {logs}"
            time.sleep(3)
    return answers


@pytest.fixture(scope="module")
def operated(tmp_path_factory, airflow_db):
    """A small retailer whose first day ran by hand (full load, trusted, a champion), two more days in the
    source DB, and the scheduler, api-server, dag-processor and triggerer of bin/airflow-local running them."""
    from aiosmtpd.controller import Controller

    from tests.conftest import LoopbackServer

    base = tmp_path_factory.mktemp("operations")
    mailbox: list[bytes] = []

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            mailbox.append(envelope.content)
            return "250 OK"

    smtp = Controller(Keep(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    web = LoopbackServer().start()  # the Slack webhook and the Segment API
    port = free_port()
    with pytest.MonkeyPatch.context() as monkeypatch:
        cfg = configure(
            monkeypatch, base, CROSSCHANNEL__GENERATOR__CUSTOMERS="600", CROSSCHANNEL__GENERATOR__HISTORY_DAYS="220",
            CROSSCHANNEL__MODELS__MAX_TRIALS="2", CROSSCHANNEL__ACTIVATION__PERSONALIZE__MIN_INTERACTIONS="50",
            CROSSCHANNEL__ALERTS__STAKEHOLDERS="[smtp, slack]",
            CROSSCHANNEL__ALERTS__STAKEHOLDER_EMAILS="[marketing@example.com]",
            CROSSCHANNEL__ALERTS__DEADLINES__RETAIL_TRUSTED="D+1 00:00:01")  # 1 s: every trusted run misses it
        generator.generate(cfg.generator, force=True)
        generator.advance(1)
        for dag_id in ("retail_ingest", "retail_trusted", "propensity_training"):
            assert run_dag(dag_id, "2026-11-01").state == "success", dag_id
        generator.advance(len(DAYS))
        env = {**os.environ, "AIRFLOW_HOME": str(base / "airflow"), "AIRFLOW_UI_PORT": str(port),
               "CROSSCHANNEL__SCHEDULE__START_DATE": "2030-01-01",  # no scheduled run: only the backfills
               "AIRFLOW__CORE__UNIT_TEST_MODE": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
               "AIRFLOW__CORE__PARALLELISM": "4",
               "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",  # parsed once: the files do not change
               "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                                                        "extra": {"disable_tls": True, "disable_ssl": True}}),
               "AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT": json.dumps(
                   {"conn_type": "slackwebhook", "password": f"{web.url}/services/T0/B0/X"}),
               "AIRFLOW_CONN_SEGMENT_DEFAULT": json.dumps(
                   {"conn_type": "http", "host": web.url, "password": "write-key-for-tests"})}
        logs = f"component logs in {base / 'airflow' / 'run'}"
        airflow_local = str(BUNDLE / "bin" / "airflow-local")
        subprocess.run([airflow_local, "start"], env=env, check=True, timeout=300)
        try:
            deadline = time.monotonic() + 180
            while len(_api(port, "/dags")["dags"]) < 6:
                assert time.monotonic() < deadline, f"the dag-processor did not parse the 6 DAGs; {logs}"
                time.sleep(2)
            for dag_id in STAGES:
                _api(port, f"/dags/{dag_id}", {"is_paused": False}, method="PATCH")

            def backfill(*extra: str) -> None:
                subprocess.run([str(BUNDLE / ".venv" / "bin" / "airflow"), "backfill", "create", "--dag-id",
                                "retail_ingest", "--from-date", DAYS[0], "--to-date", DAYS[-1],
                                "--max-active-runs", "1", *extra], env=env, check=True, timeout=120,
                               capture_output=True)

            started = time.monotonic()
            backfill()
            _wait_for_chain(port, 1, logs)
            first = {"outputs": _outputs(), "seconds": time.monotonic() - started}
            started = time.monotonic()
            backfill("--reprocess-behavior", "completed")
            _wait_for_chain(port, 2, logs)
            second = {"outputs": _outputs(), "seconds": time.monotonic() - started}
            summaries = {day: storage.read_json(paths.reports(dt.date.fromisoformat(day), "activation", "summary.json"))
                         for day in DAYS}  # before the on-call scenario below runs a day again by hand
            recovered = _fail_repair_and_clear(port, logs)
            cleared = _clear_and_rerun(port, logs)
            time.sleep(10)  # the triggerer's last deadline callbacks
            status = subprocess.run([airflow_local, "status"], env=env, capture_output=True, text=True).stdout
            assert status.count(": running") == 4, f"a component died: {status}; {logs}"
            yield {"port": port, "env": env, "first": first, "second": second, "mailbox": mailbox, "web": web,
                   "base": base, "cleared": cleared, "recovered": recovered, "summaries": summaries}
        finally:
            subprocess.run([airflow_local, "stop"], env=env, timeout=120)
            smtp.stop()
            web.stop()
    get_config.cache_clear()


def test_a_backfill_at_the_head_runs_every_stage_for_every_partition(operated):
    port = operated["port"]
    for dag_id in STAGES:
        runs = [r for r in _runs(port, dag_id) if r["state"] == "success"
                and r["dag_run_id"] != operated["recovered"]["run_id"]]
        assert sorted(r["partition_key"] for r in runs) == sorted(DAYS * 2), dag_id
        expected = "backfill" if dag_id == "retail_ingest" else "asset_triggered"
        assert {r["run_type"] for r in runs} == {expected}, dag_id
    print(f"backfills: {operated['first']['seconds']:.0f} s, then {operated['second']['seconds']:.0f} s")


def test_a_second_backfill_gives_identical_outputs(operated):
    first, second = operated["first"]["outputs"], operated["second"]["outputs"]
    assert any(key.startswith("activation/") for key in first) and any(key.startswith("trusted/") for key in first)
    assert second == first


def test_a_backfill_sends_nothing(operated):
    for day in DAYS:
        summary = operated["summaries"][day]
        assert summary["decision"]["send"] is False and "backfill" in summary["decision"]["reason"]
        assert all(f["sent"] == 0 for f in summary["destinations"].values())
        assert {s for f in summary["destinations"].values() for s in f["receipts"].values()} == {"not sent"}
    assert [r.path for r in operated["web"].received if r.path.startswith("/v1/")] == []


def test_a_run_failing_on_missing_data_fails_at_once_and_clearing_it_after_the_repair_completes_it(operated):
    recovered = operated["recovered"]
    assert recovered["failed"] == "failed" and recovered["plan_state"] == "failed"
    assert recovered["plan_tries"] == 1, "a missing partition is a data error: no retries"
    assert recovered["clear"]["state"] == "queued" and recovered["after"] == "success"
    print(f"failed {recovered['seconds_to_fail']:.0f} s after the trigger, recovered by one clear")


def test_on_call_clears_a_run_and_a_task_from_the_rest_api_and_they_run_again(operated):
    cleared = operated["cleared"]
    assert cleared["run"]["dag_id"] == "audience_activation" and cleared["run"]["partition_key"] == DAYS[-1]
    assert [ti["task_id"] for ti in cleared["task"]["task_instances"]] == ["gate_scores"]


def test_missed_deadlines_reach_the_stakeholders_by_email_and_slack(operated):
    subjects = [m.split(b"\n", 1)[0] for m in operated["mailbox"]]
    mails = b"\n".join(operated["mailbox"])
    assert b"retail_trusted missed its deadline for partition" in mails, subjects
    assert b"retail_ingest missed" not in mails, subjects  # a backfill's runs at the head carry no deadline
    posts = [r.json()["text"] for r in operated["web"].received if r.path == "/services/T0/B0/X"]
    assert any("retail_trusted missed its deadline for partition 2026-11-0" in text for text in posts)


def test_headless_chromium_sees_the_dags_and_the_asset_lineage(operated):
    out = operated["base"] / "ui"
    result = subprocess.run([str(BUNDLE / "bin" / "ui-check"), str(out)], env=operated["env"], capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "dags.png").stat().st_size > 10_000 and (out / "asset-lineage.png").stat().st_size > 10_000
