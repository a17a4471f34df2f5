"""``deploy/compose.yaml`` without Docker (there is none on the test machine): every service's command is a real
command of Carepath or Prefect as installed here, every setting it is given is one the code reads, and each
service restarts and reports its health. What Docker itself would do with the file is not tested here.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.app import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: Services whose image is someone else's (their commands are theirs).
THIRD_PARTY = {"postgres": "postgres:", "redis": "redis:"}
#: prefect-redis 0.3.0's settings (RedisMessagingSettings, prefix PREFECT_REDIS_MESSAGING_) and modules, for a
#: machine where the ``scale`` extra is not installed; read from the package itself when it is.
PREFECT_REDIS_SETTINGS = {
    f"PREFECT_REDIS_MESSAGING_{name.upper()}"
    for name in ("url", "host", "port", "db", "username", "password", "health_check_interval", "ssl")
}
PREFECT_REDIS_MODULES = {"prefect_redis.messaging", "prefect_redis.ordering", "prefect_redis.lease_storage"}


def _ours() -> list[str]:
    return [name for name in SERVICES if name not in THIRD_PARTY]


def test_every_service_restarts_and_reports_its_health() -> None:
    for name, service in SERVICES.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_third_party_services_are_the_images_they_say() -> None:
    for name, image in THIRD_PARTY.items():
        assert SERVICES[name]["image"].startswith(image)


@pytest.mark.parametrize("name", _ours())
def test_each_carepath_service_runs_a_real_command(name: str) -> None:
    service = SERVICES[name]
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    argv = service["command"]
    if argv[0] == "carepath":
        _check_carepath(argv[1:])
    elif argv[:2] == ["python", "-m"]:
        assert argv[2:] == ["flows.serve"], argv
        assert importlib.util.find_spec("flows.serve") is not None
    else:
        assert argv[:2] == ["prefect", "server"], argv
        _check_prefect_server(argv[2:])


def _check_carepath(argv: list[str]) -> None:
    """Parsed by ``carepath``'s own parser (an unknown command or option exits 2)."""
    from engine.cli.entry import _parser

    parsed = _parser().parse_args(argv)
    assert parsed.command == argv[0]


def _check_prefect_server(argv: list[str]) -> None:
    """Parsed by Prefect's own CLI (cyclopts), without running it: an unknown command or option raises."""
    from prefect.cli.server import server_app

    command, _bound, *_ = server_app.parse_args(argv, exit_on_error=False, print_error=False)
    assert command.__name__ in ("start", "start_services")


@pytest.mark.parametrize("name", _ours())
def test_each_setting_a_service_is_given_is_read_by_the_code(name: str) -> None:
    env = {key: str(value) for key, value in (SERVICES[name].get("environment") or {}).items()}
    assert env, f"{name} has no settings"
    carepath = {k: v for k, v in env.items() if k.startswith("CAREPATH_")}
    prefect = {k: v for k, v in env.items() if k.startswith("PREFECT_")}
    assert set(env) == set(carepath) | set(prefect), "only Carepath's and Prefect's settings"
    for key, value in carepath.items():  # each changes what Carepath reads from the environment
        assert Settings.from_env({key: value}) != Settings.from_env({}), f"{key} is not a Carepath setting"
    valid = _prefect_settings()
    assert set(prefect) - valid == set(), "not Prefect settings"
    for key in ("PREFECT_MESSAGING_BROKER", "PREFECT_MESSAGING_CACHE", "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING"):
        if key in prefect:
            assert prefect[key] in _prefect_redis_modules()


def _prefect_settings() -> set[str]:
    from prefect.settings import Settings as PrefectSettings
    from prefect.settings.legacy import _get_valid_setting_names

    names = set(_get_valid_setting_names(PrefectSettings))
    if importlib.util.find_spec("prefect_redis") is None:
        return names | PREFECT_REDIS_SETTINGS
    from prefect_redis.client import RedisMessagingSettings

    return names | {f"PREFECT_REDIS_MESSAGING_{field.upper()}" for field in RedisMessagingSettings.model_fields}


def _prefect_redis_modules() -> set[str]:
    if importlib.util.find_spec("prefect_redis") is None:
        return PREFECT_REDIS_MODULES
    return {m for m in PREFECT_REDIS_MODULES if importlib.util.find_spec(m) is not None}


def test_the_serving_processes_share_the_work_and_the_api_does_not_serve() -> None:
    serve, api = SERVICES["carepath-serve"], SERVICES["carepath-api"]
    assert Settings.from_env({k: str(v) for k, v in serve["environment"].items()}).serving_shared
    assert serve["deploy"]["replicas"] >= 2
    assert serve["stop_signal"] == "SIGINT"
    assert "CAREPATH_SERVING_SHARED" not in api["environment"]


def test_carepath_and_the_prefect_server_share_one_prefect_and_two_databases() -> None:
    store = SERVICES["carepath-serve"]["environment"]["CAREPATH_DATABASE_URL"]
    prefect = SERVICES["prefect-api"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert SERVICES["carepath-api"]["environment"]["CAREPATH_DATABASE_URL"] == store
    assert SERVICES["prefect-services"]["environment"] == SERVICES["prefect-api"]["environment"]
    assert store.rsplit("/", 1)[1] == "carepath" and prefect.rsplit("/", 1)[1] == "prefect"
    assert "CREATE DATABASE prefect;" in (DEPLOY / "postgres-init.sql").read_text()
    api_url = SERVICES["carepath-serve"]["environment"]["PREFECT_API_URL"]
    port = SERVICES["prefect-api"]["command"][SERVICES["prefect-api"]["command"].index("--port") + 1]
    assert api_url == f"http://prefect-api:{port}/api"


def test_the_health_checks_are_python_that_compiles() -> None:
    for name in _ours():
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        compile(test[3], f"{name} healthcheck", "exec")
        for module in re.findall(r"from ([\w.]+) import", test[3]):
            assert importlib.util.find_spec(module) is not None, module


def test_the_image_installs_carepath_with_the_scale_extra() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M):
        for path in shlex.split(source):
            assert (ROOT / path).exists(), f"COPY {path}: no such file"
    assert 'pip install ".[postgres,scale]"' in dockerfile
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["scale"] == ["prefect-redis==0.3.0"]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.startswith("prefect-redis") for d in dependencies), "an optional extra, not a core dependency"
