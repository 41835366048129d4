"""docker-compose.yml checked without Docker: the Compose specification's JSON schema, start-up order,
health checks, pinned images, memory limits, secrets only from the environment, mounted files present."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from analyzers.config.models import Config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"
VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY|ENCRYPTIONKEY", re.IGNORECASE)
NOT_SECRET = re.compile(r"_(FILE|OWNER|URL)$")  # where a secret lives, not the secret


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_example() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose/predwatch-style ${VAR}, ${VAR:-default}, ${VAR:?message} substitution."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise AssertionError(f"{name} is required: {arg}")
        return arg or ""

    return VAR.sub(one, text)


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_interpolated_compose_still_matches_the_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(doc))


def test_the_stack_has_every_part(services: dict[str, Any]) -> None:
    assert {"elasticsearch", "kibana", "filebeat", "setup", "demo", "scheduler"} <= set(services)
    assert services["setup"]["command"][0] == "setup"
    assert services["scheduler"]["command"][0] == "run"
    assert services["elasticsearch"]["environment"]["discovery.type"] == "single-node"
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"


def test_elastic_images_are_pinned_to_one_8x_release(services: dict[str, Any]) -> None:
    versions = set()
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image, f"{name}: image {image} is not pinned"
        assert not image.endswith(":latest"), f"{name}: image {image} is not pinned"
        if image.startswith("docker.elastic.co/"):
            versions.add(image.rsplit(":", 1)[1])
    assert len(versions) == 1, versions
    assert re.fullmatch(r"8\.\d+\.\d+", versions.pop())
    products = {svc["image"].split("/")[-1].split(":")[0] for svc in services.values()}
    assert {"elasticsearch", "kibana", "filebeat"} <= products


def test_dependencies_wait_for_health_or_completion(services: dict[str, Any]) -> None:
    depended_on = set()
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            depended_on.add(dep)
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is waited on to finish: it must be one-shot"
            else:
                pytest.fail(f"{name} -> {dep}: condition {condition} does not wait for readiness")
    long_running = [d for d in depended_on if services[d].get("restart") != "no"]
    assert long_running
    assert all("healthcheck" in services[d] for d in long_running)


def test_start_up_order(services: dict[str, Any]) -> None:
    def waits_for(name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(services[name].get("depends_on", {}))
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(services[dep].get("depends_on", {}))
        return seen

    assert {"elasticsearch", "kibana"} <= waits_for("setup")
    # Our templates must exist before Filebeat creates the first daily index.
    assert "setup" in waits_for("filebeat")
    assert "setup" in waits_for("scheduler")
    assert "elasticsearch" in waits_for("kibana")
    for name in services:
        assert name not in waits_for(name), f"{name} depends on itself"


def test_memory_limits_fit_a_laptop(services: dict[str, Any]) -> None:
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    by_profile: dict[str, float] = {}
    for name, svc in services.items():
        limit = str(svc.get("mem_limit", ""))
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg])", limit.lower())
        assert m, f"{name}: mem_limit missing or unreadable ({limit!r})"
        for profile in svc.get("profiles") or ["default"]:
            by_profile[profile] = by_profile.get(profile, 0.0) + float(m.group(1)) * units[m.group(2)]
    assert by_profile["default"] <= 4096, f"the stack needs {by_profile['default']:.0f} MiB"
    for profile, extra in by_profile.items():
        assert profile == "default" or extra <= 640, f"the {profile} profile adds {extra:.0f} MiB"
    heap = re.search(r"-Xmx(\d+)m", services["elasticsearch"]["environment"]["ES_JAVA_OPTS"])
    assert heap
    assert int(heap.group(1)) <= 1024 * 0.6


def test_named_volumes_are_declared_and_used(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared
    assert any(v.startswith("es-data:") for v in services["elasticsearch"]["volumes"])


def test_no_secret_in_the_compose_file(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key) and not NOT_SECRET.search(key):
                m = VAR.fullmatch(str(value))
                assert m, f"{name}.{key} must come from the environment, not be written here"
                if (m.group(2) or "").endswith("-"):
                    assert not m.group(3), f"{name}.{key} has a default value"
    text = COMPOSE.read_text()
    assert not re.search(r"(?i)(password|token)\s*[:=]\s*['\"]?(changeme|secret|elastic)\b", text)
    assert "BEGIN PRIVATE KEY" not in text


def test_env_example_names_every_required_variable() -> None:
    example = env_example()
    required = {m.group(1) for m in VAR.finditer(COMPOSE.read_text()) if not m.group(2)}
    required |= {m.group(1) for m in VAR.finditer(COMPOSE.read_text()) if (m.group(2) or "").endswith("?")}
    assert required <= set(example), required - set(example)
    for key, value in example.items():
        if SECRET_NAME.search(key) and value:
            assert value.startswith("change-me"), f".env.example {key} looks like a real secret"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored


def test_services_share_the_log_directory_with_filebeat(services: dict[str, Any]) -> None:
    demo_cmd = services["demo"]["command"]
    log_dir = demo_cmd[demo_cmd.index("--log-dir") + 1]
    assert services["filebeat"]["environment"]["PREDWATCH_LOG_DIR"] == log_dir
    demo_mount = next(v for v in services["demo"]["volumes"] if v.split(":")[1] == log_dir)
    fb_mount = next(v for v in services["filebeat"]["volumes"] if v.split(":")[1] == log_dir)
    assert demo_mount.split(":")[0] == fb_mount.split(":")[0]
    assert fb_mount.endswith(":ro")


@pytest.mark.parametrize("service", ["setup", "scheduler"])
def test_the_mounted_predwatch_config_is_valid_with_the_services_environment(
    services: dict[str, Any], service: str
) -> None:
    svc = services[service]
    config_path = svc["command"][svc["command"].index("--config") + 1]
    mount = next(v for v in svc["volumes"] if v.split(":")[1] == config_path)
    source = ROOT / mount.split(":")[0]
    env = {k: interpolate(str(v), env_example()) for k, v in svc["environment"].items()}
    config = Config.model_validate(yaml.safe_load(interpolate(source.read_text(), env)))
    es = config.store.elasticsearch
    assert es is not None
    assert es.hosts == [env["ES_URL"]]
    assert es.username == env["ES_USERNAME"]
    assert es.password == env["ES_PASSWORD"]
    assert config.kibana is not None
    assert config.kibana.url == env["KIBANA_URL"]
    assert config.models, "the demo's model is monitored"


def test_kibana_has_its_three_encryption_keys_from_the_environment(services: dict[str, Any]) -> None:
    env = services["kibana"]["environment"]
    keys = (
        "XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY",
        "XPACK_SECURITY_ENCRYPTIONKEY",
        "XPACK_REPORTING_ENCRYPTIONKEY",
    )
    names = {VAR.fullmatch(str(env[k])).group(1) for k in keys}
    assert len(names) == 3, "one variable per key"
    example = env_example()
    for name in names:
        assert len(example[name]) >= 32, f"{name}: Kibana needs 32 or more characters"


def test_prometheus_alertmanager_and_grafana_are_an_optional_profile(services: dict[str, Any]) -> None:
    optional = {name: svc["profiles"] for name, svc in services.items() if "profiles" in svc}
    assert optional == {"prometheus": ["metrics"], "alertmanager": ["metrics"], "grafana": ["metrics"]}
    # nothing the default stack starts waits for an optional service
    for name, svc in services.items():
        if name not in optional:
            assert not set(svc.get("depends_on", {})) & set(optional), name
    grafana_env = services["grafana"]["environment"]
    assert VAR.fullmatch(grafana_env["GF_SECURITY_ADMIN_PASSWORD"])
    assert grafana_env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    for name in optional:
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), f"{name} is published beyond localhost"


def _mount(svc: dict[str, Any], source: str) -> str:
    """Where a service mounts a file or folder of the repository."""
    return next(v.split(":")[1] for v in svc["volumes"] if v.split(":")[0] == source)


def test_prometheus_scrapes_the_scheduler_where_it_serves(services: dict[str, Any]) -> None:
    svc = services["scheduler"]
    config_path = svc["command"][svc["command"].index("--config") + 1]
    source = next(v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == config_path)
    env = {k: interpolate(str(v), env_example()) for k, v in svc["environment"].items()}
    scheduler = Config.model_validate(yaml.safe_load(interpolate((ROOT / source).read_text(), env))).scheduler
    assert scheduler.metrics_port is not None
    assert scheduler.metrics_address == "0.0.0.0", "Prometheus scrapes from another container"
    prometheus = services["prometheus"]
    config_file = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    assert _mount(prometheus, "./deploy/prometheus/prometheus.yml") == config_file
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"] == [{"targets": [f"scheduler:{scheduler.metrics_port}"]}]
    rules_dir = _mount(prometheus, "./deploy/prometheus/rules")
    assert scrape["rule_files"] == [f"{rules_dir}/*.yml"]
    assert list((ROOT / "deploy/prometheus/rules").glob("*.yml"))


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    provisioning = _mount(grafana, "./deploy/grafana/provisioning")
    assert provisioning == "/etc/grafana/provisioning"
    (source,) = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    port = services["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{port}"
    (provider,) = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/predwatch.yml").read_text())[
        "providers"
    ]
    dashboards = _mount(grafana, "./deploy/grafana/dashboards")
    assert provider["options"]["path"] == dashboards
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards + "/")
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards" / home.removeprefix(dashboards + "/")).read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {source["uid"]}
