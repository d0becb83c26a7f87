"""Shared fixtures. Airflow is pointed at a throwaway home before anything imports it."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import email.message
import functools
import glob
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

BUNDLE = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="crosschannel-airflow-")
_PID = os.getpid()
os.environ.update({
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(BUNDLE / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(BUNDLE / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
})
for name in [k for k in os.environ if k.startswith("CROSSCHANNEL__") or k == "CROSSCHANNEL_CONFIG"]:
    del os.environ[name]

PARSE_TIME = "dag_parse_seconds"  # a user property of test_dag_integrity's reports (they cross xdist's workers)

# Modules whose set-up runs for minutes start first, so that under xdist (`make test` runs two workers, one
# module per worker at a time) the longest never starts last.
SLOW_FIRST = ("test_operations_e2e.py", "test_aws_e2e.py", "test_sources.py", "test_demo.py", "test_byod.py")


def pytest_sessionfinish(session, exitstatus):
    """Remove the throwaway Airflow home, once, in pytest's own process (an atexit hook would also run in the
    processes Airflow forks, and remove it under the tests)."""
    if os.getpid() == _PID:
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: within a module, the order of definition


def pytest_terminal_summary(terminalreporter):
    times = {key: seconds for report in terminalreporter.stats.get("passed", []) if report.when == "call"
             for name, (key, seconds) in getattr(report, "user_properties", []) if name == PARSE_TIME}
    if times:
        terminalreporter.section("DAG parse times")
        for key, seconds in sorted(times.items()):
            terminalreporter.write_line(f"{key:<40} {seconds * 1000:8.0f} ms")


@functools.cache
def glue_script():
    """include/glue/run_sql.py loaded as Glue runs it (its `run()` and `read_input()` take a SparkSession)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_sql", BUNDLE / "include/glue/run_sql.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A complete aws-target configuration (tests override the storage root and what they exercise).
ACCOUNT = "123456789012"
AWS_ENV = {
    "CROSSCHANNEL__TARGET": "aws",
    "CROSSCHANNEL__STORAGE__ROOT": "s3://lake/data",
    "CROSSCHANNEL__SEGMENT__LOGS_URI": "s3://lake/segment-logs",
    "CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN": f"arn:aws:dms:us-east-1:{ACCOUNT}:task:RETAIL",
    "CROSSCHANNEL__AWS__GLUE__ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/glue",
    "CROSSCHANNEL__AWS__GLUE__SCRIPT_LOCATION": "s3://lake/code/run_sql.py",
    "CROSSCHANNEL__AWS__SAGEMAKER__ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
    "CROSSCHANNEL__ACTIVATION__PINPOINT__ENABLED": "true",  # off by default; the tests cover the loader
    "CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID": "0123456789abcdef0123456789abcdef",
    "CROSSCHANNEL__ACTIVATION__PINPOINT__ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/pinpoint-import",
    "CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/personalize",
    **{f"CROSSCHANNEL__ACTIVATION__PERSONALIZE__{name.upper()}_DATASET_ARN":
       f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset/retail/{name.upper()}"
       for name in ("interactions", "items", "users")},
    "CROSSCHANNEL__ACTIVATION__PERSONALIZE__DATASET_GROUP_ARN":
        f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-group/retail",
}


def configure(monkeypatch, tmp_path: Path, **overrides: str):
    """Point the bundle's configuration (local target) at tmp_path, with a small generator."""
    from crosschannel.core.config import get_config

    values = {
        "CROSSCHANNEL__TARGET": "local",
        "CROSSCHANNEL__STORAGE__ROOT": str(tmp_path / "root"),
        "CROSSCHANNEL__SOURCE__URL": f"sqlite:///{tmp_path / 'source.db'}",
        "CROSSCHANNEL__SEGMENT__LOGS_URI": str(tmp_path / "segment-logs"),
        "CROSSCHANNEL__ACTIVATION__PINPOINT__ENABLED": "true",  # off by default; the tests cover it
        "CROSSCHANNEL__GENERATOR__CUSTOMERS": "400",
        "CROSSCHANNEL__GENERATOR__HISTORY_DAYS": "60",
        "CROSSCHANNEL__GENERATOR__EVENT_HISTORY_DAYS": "2",
        "CROSSCHANNEL__GENERATOR__START_PARTITION": "2026-11-01",
        **overrides,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_config.cache_clear()
    return get_config()


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """A local-target configuration rooted in tmp_path."""
    from crosschannel.core.config import get_config

    yield configure(monkeypatch, tmp_path)
    get_config.cache_clear()


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata DB, migrated once per session (dag.test() needs it)."""
    airflow = shutil.which("airflow", path=str(Path(os.sys.executable).parent)) or "airflow"
    result = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _AIRFLOW_HOME


def run_dag(dag_id: str, partition: str, mark_success_pattern: str | None = None, **conf):
    """Parse the bundle's DAGs as the dag processor would and run one with dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    from crosschannel.wiring.defaults import test_run

    bag = DagBag(str(BUNDLE / "dags"))
    assert not bag.import_errors, bag.import_errors
    return test_run(bag.dags[dag_id], partition, run_conf=conf, mark_success_pattern=mark_success_pattern)


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on loopback, as an S3/DMS endpoint; the aws_default connection points at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_AWS_DEFAULT", "AWS_ACCESS_KEY_ID",
                                                  "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update({
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    })
    yield endpoint
    server.stop()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL: CROSSCHANNEL_TEST_PG_URL if set, else a throwaway cluster from Debian's binaries."""
    if os.environ.get("CROSSCHANNEL_TEST_PG_URL"):
        yield os.environ["CROSSCHANNEL_TEST_PG_URL"]
        return
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    initdb = shutil.which("initdb") or (bindirs and f"{bindirs[-1]}/initdb")
    if not initdb:
        pytest.fail("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does) "
                    "or set CROSSCHANNEL_TEST_PG_URL")
    bindir = Path(initdb).parent
    workdir = Path(tempfile.mkdtemp(prefix="crosschannel-pg-"))
    workdir.chmod(0o755)
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(workdir, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = workdir / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(workdir / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        time.sleep(0.2)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pg_engine(postgres_url):
    """A clean database on the PostgreSQL server for one test."""
    import uuid

    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(scope="session")
def spark():
    """A local Spark 3.5 session, as Glue 5.x runs (UTC, one partition: the fixtures are small)."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("crosschannel-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "1").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def full_load_one_store(tmp_path: Path, day):
    """A source DB holding one store, change capture on, and the local task's full load landed for `day`
    under the configured storage root (file:// or s3://)."""
    import datetime as dt

    from crosschannel.core import source
    from crosschannel.local import dms_task

    engine = source.connect(f"sqlite:///{tmp_path / 'src.db'}", create=True)
    source.create_schema(engine)
    with engine.begin() as conn:
        source.set_clock(conn, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)))
        conn.execute(source.stores.insert(), [store_row(1, "One", dt.datetime(2026, 1, 1), dt.date(2020, 1, 1))])
    source.enable_cdc(engine)
    dms_task.LocalReplicationTask(engine).start("start-replication", day)
    return engine


def store_row(store_id: int, name: str, updated_at, opened=None) -> dict:
    """One row of the source's stores table, as the DMS and landing tests insert them (opened 2020-01-02)."""
    import datetime as dt

    return {"store_id": store_id, "name": name, "city": "Salem", "region": "north",
            "opened_date": opened or dt.date(2020, 1, 2), "updated_at": updated_at}


def empty_bucket(s3, bucket: str) -> None:
    """Delete a moto bucket and what it holds (the moto server lives for the whole session)."""
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


@dataclasses.dataclass
class ReceivedRequest:
    """One request as it reached `LoopbackServer`, with the status it was answered."""

    method: str
    path: str
    headers: email.message.Message  # looked up case-insensitively, as HTTP headers are
    body: bytes
    status: int

    @property
    def size(self) -> int:
        return len(self.body)

    def json(self):
        return json.loads(self.body)


class LoopbackServer:
    """A loopback HTTP server that records every POST and PUT and answers from a script of status or
    (status, headers[, raw body]), then the `then` answer forever (200 unless `answer` says otherwise).
    With `only_path` set, a request to any other path is answered 404 without using up the script."""

    def __init__(self) -> None:
        self.received: list[ReceivedRequest] = []
        self.only_path: str | None = None
        self._lock = threading.Lock()
        self._script: collections.deque[tuple] = collections.deque()
        self._default: tuple = (200, {})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def answer(self, *script: int | tuple, then: int | tuple = 200) -> None:
        def norm(item):
            return item if isinstance(item, tuple) else (item, {})

        with self._lock:
            self._script = collections.deque(norm(s) for s in script)
            self._default = norm(then)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()

    def _next_answer(self, path: str) -> tuple:
        with self._lock:
            if self.only_path is not None and path != self.only_path:
                return 404, {}
            return self._script.popleft() if self._script else self._default

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, *body = server._next_answer(self.path)
                with server._lock:
                    server.received.append(ReceivedRequest(method=self.command, path=self.path,
                                                           headers=self.headers, body=raw, status=status))
                payload = {"success": True} if status < 300 else {"code": f"e{status}", "message": "scripted"}
                data = body[0] if body else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = _answer

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        return Handler

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def http_server():
    """A started `LoopbackServer`, stopped after the test."""
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture
def stub():
    """stub(hook): give the hook a real boto3 client (dummy credentials, us-east-1) behind an active Stubber."""
    stubbers = []

    def make(hook):
        import boto3
        from botocore.stub import Stubber

        client = boto3.client(hook.client_type, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        hook.conn = client  # `conn` is a cached_property: the instance attribute is what the hook uses
        stubber = Stubber(client)  # botocore's own stub: answers checked against the service model
        stubber.activate()
        stubbers.append(stubber)
        return stubber

    yield make
    for stubber in stubbers:
        stubber.deactivate()
