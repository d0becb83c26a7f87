"""docker-compose.yaml: the Airflow 3.3.2 evaluation stack, checked by construction.

No Docker engine runs here, so the file is parsed (PyYAML resolves its anchors and merge keys as Compose
does) and every value the bundle depends on is checked against the repository: the services and their
commands, the bundle mount and Airflow's folders, the CROSSCHANNEL__* overrides through the bundle's own
config loader, the database URLs, the MinIO connection, the start order and the healthchecks.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from crosschannel.core.config import BUNDLE_ROOT, ENV_PREFIX, load_config

COMPOSE_FILE = BUNDLE_ROOT / "docker-compose.yaml"
AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.11"
BUNDLE_IN_CONTAINER = "/opt/airflow/bundle"
BUNDLE_MOUNT = f".:{BUNDLE_IN_CONTAINER}:ro"

# The long-running Airflow components and their commands; airflow-init migrates the DB before them.
AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
AIRFLOW_SERVICES = ["airflow-init", *AIRFLOW_COMMANDS]
OTHER_SERVICES = ["postgres", "source-db", "minio", "minio-init"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def duplicate_keys(text: str) -> list[str]:
    """Keys repeated in one mapping: PyYAML keeps the last silently, Compose rejects the file."""
    found, stack, visited = [], [yaml.compose(text, Loader=yaml.SafeLoader)], set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key, value in node.value:
                if key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        found.append(f"{key.value} (line {key.start_mark.line + 1})")
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return found


def test_the_file_has_no_duplicate_keys():
    assert duplicate_keys(COMPOSE_FILE.read_text()) == []
    assert duplicate_keys("a:\n  b: 1\n  b: 2\n") == ["b (line 3)"]


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    """A service's environment as a mapping (Compose allows a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def healthcheck_test(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def scheduler_env(services: dict) -> dict[str, str]:
    return env_of(services["airflow-scheduler"])


def crosschannel_env(services: dict) -> dict[str, str]:
    return {k: v for k, v in scheduler_env(services).items() if k.startswith(ENV_PREFIX)}


def test_the_expected_services_exist(services):
    missing = set(AIRFLOW_SERVICES + OTHER_SERVICES) - set(services)
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"


def test_the_airflow_image_matches_the_pinned_airflow_version():
    pins = re.findall(r"^apache-airflow==(\S+)$", (BUNDLE_ROOT / "requirements.txt").read_text(), re.M)
    assert pins == ["3.3.2"]
    assert AIRFLOW_IMAGE.startswith(f"apache/airflow:{pins[0]}-python3.11")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_use_the_airflow_332_image(services, name):
    assert services[name]["image"] == AIRFLOW_IMAGE


@pytest.mark.parametrize(("name", "command"), AIRFLOW_COMMANDS.items())
def test_airflow_services_run_their_component(services, name, command):
    assert command_of(services[name]) == command


def test_airflow_init_migrates_the_metadata_db(services):
    assert command_of(services["airflow-init"]) == "airflow db migrate"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_the_bundle_is_mounted_read_only_with_airflows_folders_inside_it(services, name):
    service = services[name]
    assert BUNDLE_MOUNT in service["volumes"]
    env = env_of(service)
    folders = {
        "AIRFLOW__CORE__DAGS_FOLDER": f"{BUNDLE_IN_CONTAINER}/dags",
        "AIRFLOW__CORE__PLUGINS_FOLDER": f"{BUNDLE_IN_CONTAINER}/plugins",
    }
    for key, expected in folders.items():
        assert env[key] == expected
    assert f"{BUNDLE_IN_CONTAINER}/plugins" in env["PYTHONPATH"].split(":")


def test_the_container_folders_are_directories_of_this_repository(services):
    """The mount source `.` is the compose file's folder, the bundle root: map the container paths back."""
    assert COMPOSE_FILE.parent == BUNDLE_ROOT

    def on_host(container_path: str):
        assert container_path.startswith(BUNDLE_IN_CONTAINER + "/")
        return BUNDLE_ROOT / container_path.removeprefix(BUNDLE_IN_CONTAINER + "/")

    env = scheduler_env(services)
    dags = on_host(env["AIRFLOW__CORE__DAGS_FOLDER"])
    plugins = on_host(env["AIRFLOW__CORE__PLUGINS_FOLDER"])
    assert dags == BUNDLE_ROOT / "dags"
    assert (dags / "retail_ingest.py").is_file()
    assert plugins == BUNDLE_ROOT / "plugins"
    assert (plugins / "crosschannel" / "core" / "config.py").is_file()
    for entry in env["PYTHONPATH"].split(":"):
        assert on_host(entry).is_dir()


def test_the_requirements_installed_at_start_are_the_mounted_ones(services):
    for name in AIRFLOW_COMMANDS:
        value = env_of(services[name])["_PIP_ADDITIONAL_REQUIREMENTS"]
        assert value.split() == ["-r", f"{BUNDLE_IN_CONTAINER}/requirements.txt",
                                 "-c", f"{BUNDLE_IN_CONTAINER}/constraints.txt"]
        assert (BUNDLE_ROOT / "requirements.txt").is_file()
        assert (BUNDLE_ROOT / "constraints.txt").is_file()
    # The migration needs none of them.
    assert env_of(services["airflow-init"])["_PIP_ADDITIONAL_REQUIREMENTS"] == ""


def test_the_airflow_settings(services):
    env = scheduler_env(services)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname in services


def test_every_airflow_component_shares_the_same_environment(services):
    """Secrets, DB and bundle settings must agree between the components (only the init's pip differs)."""
    reference = scheduler_env(services)
    assert len(reference["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32
    assert reference["AIRFLOW__API__SECRET_KEY"]
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        env.pop("_PIP_ADDITIONAL_REQUIREMENTS")
        assert env == {k: v for k, v in reference.items() if k != "_PIP_ADDITIONAL_REQUIREMENTS"}, name


def test_the_crosschannel_variables_are_accepted_by_the_bundles_config_loader(services):
    environ = crosschannel_env(services)
    assert set(environ) == {
        "CROSSCHANNEL__TARGET",
        "CROSSCHANNEL__STORAGE__ROOT",
        "CROSSCHANNEL__STORAGE__CONN_ID",
        "CROSSCHANNEL__SEGMENT__LOGS_URI",
        "CROSSCHANNEL__SOURCE__URL",
    }
    config = load_config(environ=environ)
    assert config.target == "local"
    assert config.storage.url == "s3://crosschannel/data"
    assert config.storage.url.startswith("s3://crosschannel/")
    assert config.segment.logs_url == "s3://crosschannel/segment-logs"
    assert config.storage.conn_id == "minio_s3"
    source = make_url(config.source.sqlalchemy_url)
    assert source.get_backend_name() == "postgresql"
    assert source.get_driver_name() == "psycopg2"


def test_the_metadata_db_is_the_postgres_service(services):
    url = make_url(scheduler_env(services)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    postgres = env_of(services["postgres"])
    assert url.get_backend_name() == "postgresql"
    assert (url.host, url.port or 5432) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_the_source_db_is_the_source_db_service(services):
    url = make_url(load_config(environ=crosschannel_env(services)).source.sqlalchemy_url)
    source_db = env_of(services["source-db"])
    assert (url.host, url.port or 5432) == ("source-db", 5432)
    assert (url.username, url.password, url.database) == (
        source_db["POSTGRES_USER"],
        source_db["POSTGRES_PASSWORD"],
        source_db["POSTGRES_DB"],
    )
    # Its own data volume, not the metadata DB's.
    assert services["source-db"]["volumes"] != services["postgres"]["volumes"]


def minio_connection(services) -> tuple[str, dict]:
    conn_id = load_config(environ=crosschannel_env(services)).storage.conn_id
    value = scheduler_env(services)[f"AIRFLOW_CONN_{conn_id.upper()}"]
    return conn_id, json.loads(value)


def test_the_minio_connection_points_at_the_minio_service(services):
    _, conn = minio_connection(services)
    minio = env_of(services["minio"])
    assert conn["conn_type"] == "aws"
    assert (conn["login"], conn["password"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    endpoint = urlsplit(conn["extra"]["endpoint_url"])
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "minio", 9000)
    assert conn["extra"]["region_name"] == "us-east-1"
    assert command_of(services["minio"]).split()[:2] == ["server", "/data"]


def test_airflow_reads_the_minio_connection_as_the_amazon_provider_does(services):
    from airflow.models.connection import Connection
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    conn_id, conn = minio_connection(services)
    wrapper = AwsConnectionWrapper(Connection.from_json(json.dumps(conn), conn_id=conn_id))
    assert wrapper.get_service_endpoint_url("s3") == "http://minio:9000"
    assert (wrapper.aws_access_key_id, wrapper.aws_secret_access_key) == ("minioadmin", "minioadmin")
    assert wrapper.region_name == "us-east-1"


def test_minio_init_creates_the_bucket_of_the_storage_root(services):
    config = load_config(environ=crosschannel_env(services))
    bucket = urlsplit(config.storage.url).netloc
    assert bucket == urlsplit(config.segment.logs_url).netloc == "crosschannel"
    init = services["minio-init"]
    assert command_of(init) == f"mb --ignore-existing local/{bucket}"
    alias = urlsplit(env_of(init)["MC_HOST_local"])
    minio = env_of(services["minio"])
    assert (alias.hostname, alias.port) == ("minio", 9000)
    assert (alias.username, alias.password) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", AIRFLOW_COMMANDS)
def test_airflow_components_start_after_the_init_and_the_backing_services(services, name):
    assert services[name]["depends_on"] == {
        "airflow-init": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "source-db": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }


def test_airflow_init_waits_for_the_metadata_db(services):
    assert services["airflow-init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_every_dependency_is_a_service(services):
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_every_image_is_pinned_by_a_tag_other_than_latest(services):
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} uses latest"
    assert services["postgres"]["image"] == services["source-db"]["image"] == "postgres:16"


def test_the_healthchecks(services):
    assert healthcheck_test(services["postgres"]) == "CMD pg_isready -U airflow -d airflow"
    assert healthcheck_test(services["source-db"]) == "CMD pg_isready -U retail -d retail"
    assert healthcheck_test(services["minio"]) == "CMD mc ready local"
    api = services["airflow-apiserver"]
    assert healthcheck_test(api) == "CMD curl --fail http://localhost:8080/api/v2/version"
    assert any(str(port).endswith("8080:8080") for port in api["ports"])


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_the_local_ui_without_docker_runs_the_same_components_and_settings(services):
    """bin/airflow-local (make ui) is the compose stack's Airflow on loopback: same components, same settings."""
    script = (BUNDLE_ROOT / "bin" / "airflow-local").read_text()
    exported = dict(re.findall(r"^export (AIRFLOW__\w+)=(\S+)", script, re.M))
    components = re.search(r"^COMPONENTS=\((.*)\)", script, re.M)[1].split()
    shared = {"AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
              "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"}

    assert sorted(components) == sorted(command_of(s) for n, s in services.items()
                                        if n.startswith("airflow-") and n != "airflow-init")
    assert exported["AIRFLOW__CORE__EXECUTOR"].endswith("LocalExecutor}")
    for key in shared:
        assert exported[key].strip("'\"") == scheduler_env(services)[key], key
