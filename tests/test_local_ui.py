"""The local UI without Docker (bin/airflow-local, bin/airflow, make ui / make airflow): loopback only, every port from
its variable, the scheduled head of the chain held back unless asked, and the CLI in the components' environment.

All but the last test read the environment the script sets (`bin/airflow-local env`) without starting Airflow; the
last starts the four components on free ports and checks from /proc that they listen on 127.0.0.1 only (~30 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crosschannel.core.config import load_config
from tests.conftest import BUNDLE, free_port

AIRFLOW_LOCAL = str(BUNDLE / "bin" / "airflow-local")
HELD_BACK_UNTIL = "2100-01-01"
# What the caller may set; the tests start from none of them.
INPUTS = ("AIRFLOW_UI_PORT", "AIRFLOW_SCHEDULER_HEALTH_PORT", "SCHEDULE", "CROSSCHANNEL__SCHEDULE__START_DATE")


def base_env(home: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INPUTS}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__UNIT_TEST_MODE": "False", **values}


def local_env(home: Path, **values: str) -> dict[str, str]:
    """The environment `eval "$(bin/airflow-local env)"` gives a shell."""
    result = subprocess.run(["bash", "-c", f'eval "$({AIRFLOW_LOCAL} env)" && env -0'], env=base_env(home, **values),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


def test_every_server_is_on_loopback_and_each_port_comes_from_its_variable(tmp_path):
    ui, health = free_port(), free_port()
    env = local_env(tmp_path, AIRFLOW_UI_PORT=str(ui), AIRFLOW_SCHEDULER_HEALTH_PORT=str(health))

    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["AIRFLOW__API__HOST"] == env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == str(ui)
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] == str(health)
    for name in ("AIRFLOW__API__BASE_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        url = urlsplit(env[name])
        assert (url.hostname, url.port) == ("127.0.0.1", ui), name
    hosts = {k: v for k, v in env.items() if k.startswith("AIRFLOW__") and k.endswith("_HOST")}
    assert hosts and set(hosts.values()) == {"127.0.0.1"}, hosts
    # The worker and triggerer log servers bind every interface in Airflow 3.3.2 (no host setting): not started.
    script = Path(AIRFLOW_LOCAL).read_text()
    assert "scheduler | triggerer) args=(--skip-serve-logs)" in script
    assert "api-server) args=(--host 127.0.0.1" in script


def test_the_ports_default_to_airflows_and_bad_values_are_refused(tmp_path):
    env = local_env(tmp_path)
    assert env["AIRFLOW__API__PORT"] == "8080"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] == "8974"
    for bad in ({"AIRFLOW_UI_PORT": "80a"}, {"AIRFLOW_SCHEDULER_HEALTH_PORT": "70000"},
                {"AIRFLOW_UI_PORT": "9000", "AIRFLOW_SCHEDULER_HEALTH_PORT": "9000"}, {"SCHEDULE": "maybe"}):
        result = subprocess.run([AIRFLOW_LOCAL, "env"], env=base_env(tmp_path, **bad), capture_output=True, text=True)
        assert result.returncode == 2 and result.stderr, bad


def test_the_scheduled_head_is_held_back_unless_asked(tmp_path):
    configured = str(load_config(environ={}).schedule.start_date)
    held = local_env(tmp_path)
    scheduled = local_env(tmp_path, SCHEDULE="on")
    explicit = local_env(tmp_path, CROSSCHANNEL__SCHEDULE__START_DATE="2030-01-01")

    assert held["CROSSCHANNEL__SCHEDULE__START_DATE"] == HELD_BACK_UNTIL
    assert "CROSSCHANNEL__SCHEDULE__START_DATE" not in scheduled
    assert explicit["CROSSCHANNEL__SCHEDULE__START_DATE"] == "2030-01-01"
    assert str(load_config(environ=held).schedule.start_date) == HELD_BACK_UNTIL
    assert str(load_config(environ=scheduled).schedule.start_date) == configured < HELD_BACK_UNTIL


@pytest.mark.parametrize(("schedule", "start"), [("off", HELD_BACK_UNTIL), ("on", None)])
def test_the_time_scheduled_dags_start_on_the_modes_day(tmp_path, schedule, start):
    """What retail_ingest and propensity_training take as start_date, in the CLI's environment."""
    code = "from crosschannel.wiring.defaults import SCHEDULE_START; print(SCHEDULE_START.date())"
    result = subprocess.run(["bash", "-c", f'eval "$({AIRFLOW_LOCAL} env)" && {BUNDLE}/.venv/bin/python -c "{code}"'],
                            env=base_env(tmp_path, SCHEDULE=schedule), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (start or str(load_config(environ={}).schedule.start_date))


def test_make_airflow_and_bin_airflow_run_the_cli_against_the_bundle_home(tmp_path):
    env = base_env(tmp_path)
    version = subprocess.run(["make", "-s", "airflow", "ARGS=version"], cwd=BUNDLE, env=env, capture_output=True,
                             text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().splitlines()[-1] == "3.3.2"
    values = {}
    for section, key in (("core", "dags_folder"), ("core", "plugins_folder"), ("logging", "base_log_folder")):
        result = subprocess.run([str(BUNDLE / "bin" / "airflow"), "config", "get-value", section, key], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        values[key] = result.stdout.strip().splitlines()[-1]
    assert values == {"dags_folder": str(BUNDLE / "dags"), "plugins_folder": str(BUNDLE / "plugins"),
                      "base_log_folder": str(tmp_path / "logs")}


# --- one real start: the sockets of the components' processes, read from /proc ---

def _processes() -> dict[int, int]:
    """pid -> parent pid of every process."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _tree(roots: set[int]) -> set[int]:
    parents = _processes()
    found = {pid for pid in roots if pid in parents}
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    if words[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in words[12:])
    return ":".join(words[i:i + 2].hex() for i in range(0, 16, 2))


def _listeners(pids: set[int]) -> set[tuple[str, int]]:
    """The (address, port) of every TCP socket in LISTEN state that one of the processes holds."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                address, port = fields[1].rsplit(":", 1)
                found.add((_address(address), int(port, 16)))
    return found


def _healthy(ui: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except OSError:
        return False
    return all(health[c]["status"] == "healthy" for c in ("scheduler", "triggerer"))


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the sockets from Linux's /proc")
def test_a_started_instance_listens_on_loopback_only_and_stops_without_leftovers(tmp_path):
    ui, health = free_port(), free_port()
    env = base_env(tmp_path / "airflow", AIRFLOW_UI_PORT=str(ui), AIRFLOW_SCHEDULER_HEALTH_PORT=str(health))
    run = tmp_path / "airflow" / "run"
    pids: set[int] = set()
    try:
        started = subprocess.run([AIRFLOW_LOCAL, "start"], env=env, capture_output=True, text=True, timeout=150)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"schedule: held back until {HELD_BACK_UNTIL}" in started.stdout
        # Listening once the scheduler's and the triggerer's side processes would have started with their jobs.
        deadline = time.monotonic() + 40
        while not _healthy(ui) or ("127.0.0.1", health) not in _listeners(_tree({int(p.read_text())
                                                                                  for p in run.glob("*.pid")})):
            assert time.monotonic() < deadline, f"not healthy within 40 s; logs in {run}"
            time.sleep(1)
        time.sleep(2)
        pids = _tree({int(p.read_text()) for p in run.glob("*.pid")})

        assert _listeners(pids) == {("127.0.0.1", ui), ("127.0.0.1", health)}
        # Another command with only AIRFLOW_HOME set reaches this instance: its ports and mode are recorded.
        recorded = local_env(tmp_path / "airflow")
        assert (recorded["AIRFLOW_UI_PORT"], recorded["AIRFLOW_SCHEDULER_HEALTH_PORT"]) == (str(ui), str(health))
        assert recorded["CROSSCHANNEL__SCHEDULE__START_DATE"] == HELD_BACK_UNTIL
    finally:
        stopped = subprocess.run([AIRFLOW_LOCAL, "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(1)
    assert not pids & set(_processes()), "processes left after bin/airflow-local stop"
    assert not list(run.glob("*.pid"))
