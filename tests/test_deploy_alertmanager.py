"""Alertmanager in the compose file's metrics profile, checked without Docker: Prometheus sends it the alerts,
every rule's alert is routed to a receiver that exists, the inhibitions name rules that exist and labels both
sides carry, and the Slack webhook URL comes from a compose secret, never from a file of the repository.
Where ``amtool``/``promtool`` (Debian's prometheus-alertmanager and prometheus packages) are installed, they
check the files too, and where the ``alertmanager`` binary is, it runs on 127.0.0.1 and posts to a Slack
stand-in."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzers.metrics.catalogue import METRICS
from tests.slack_server import FakeSlack
from tests.test_compose_stack import COMPOSE, env_example
from tests.test_deploy_metrics import RULES, metric_names

ROOT = Path(__file__).resolve().parents[1]
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
SEVERITY = {"info": 0, "warning": 1, "critical": 2}


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Whether an alert's labels satisfy every Alertmanager matcher (``name="v"``, ``=~``, ``!=``, ``!~``;
    regular expressions anchored at both ends, a missing label read as empty, as Alertmanager does)."""
    for text in matchers:
        m = MATCHER.match(text)
        assert m, f"unreadable matcher {text!r}"
        name, op, value = m.groups()
        have = labels.get(name, "")
        hit = re.fullmatch(value, have) is not None if "~" in op else have == value
        if hit != (op in ("=", "=~")):
            return False
    return True


def route(
    node: dict[str, Any], labels: dict[str, str], inherited: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The routes an alert ends in, each with the settings it inherits (Alertmanager's tree: the first child
    that matches, and the next ones too while ``continue`` is set; the node itself when no child does)."""
    settings = {**(inherited or {}), **{k: v for k, v in node.items() if k not in ("routes", "matchers")}}
    out: list[dict[str, Any]] = []
    for child in node.get("routes", []):
        if matches(child.get("matchers", []), labels):
            out += route(child, labels, settings)
            if not child.get("continue", False):
                break
    return out or [settings]


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alert_labels(rule: dict[str, Any]) -> set[str]:
    """The labels an alert of the rule can carry: its series' labels (those every metric it reads has), the
    rule's own labels and ``alertname``."""
    names = [METRICS[name].labels for name in metric_names(rule["expr"]) if name in METRICS]
    series = set(names[0]).intersection(*names[1:]) if names else set()
    return series | set(rule.get("labels", {})) | {"alertname"}


def rule_alert(rule: dict[str, Any]) -> dict[str, str]:
    return {"alertname": rule["alert"], **rule.get("labels", {})}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(ALERTMANAGER.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_router_follows_alertmanagers_rules() -> None:
    tree = {
        "receiver": "root",
        "group_wait": "30s",
        "routes": [
            {"matchers": ['severity=~"crit.*"', 'team!="web"'], "receiver": "page", "continue": True},
            {"matchers": ['alertname="A"'], "group_wait": "5s"},
            {"matchers": ['severity="critical"'], "receiver": "never"},
        ],
    }
    assert [r["receiver"] for r in route(tree, {"alertname": "A", "severity": "critical"})] == ["page", "root"]
    assert route(tree, {"alertname": "A"})[0]["group_wait"] == "5s"
    assert [r["receiver"] for r in route(tree, {"alertname": "B", "severity": "critical", "team": "web"})] == ["never"]
    assert [r["receiver"] for r in route(tree, {"alertname": "B", "severity": "criticality"})] == ["page"]
    assert [r["receiver"] for r in route(tree, {"alertname": "B"})] == ["root"]
    assert matches(['x!~"a|b"'], {}) is True
    assert matches(['x=~"a|b"'], {"x": "ab"}) is False


def test_compose_runs_alertmanager_with_its_config_and_the_webhook_as_a_secret(compose: dict[str, Any]) -> None:
    svc = compose["services"]["alertmanager"]
    assert svc["profiles"] == ["metrics"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in svc["command"])
    mounts = {v.split(":")[0]: v.split(":")[1] for v in svc["volumes"]}
    assert mounts["./deploy/alertmanager/alertmanager.yml"] == flags["config.file"]
    assert mounts["alertmanager-data"] == flags["storage.path"], "silences and notification log survive a restart"
    assert all(p.startswith("127.0.0.1:") for p in svc["ports"])
    assert "healthcheck" in svc
    (secret,) = svc["secrets"]
    source = compose["secrets"][secret]
    assert set(source) == {"environment"}, "the URL comes from the environment, not a file of the repository"
    assert source["environment"] in env_example()
    assert env_example()[source["environment"]] == "", ".env.example holds no webhook"
    receivers = yaml.safe_load(ALERTMANAGER.read_text())["receivers"]
    files = {c["api_url_file"] for r in receivers for c in r["slack_configs"]}
    assert files == {f"/run/secrets/{secret}"}


def test_prometheus_sends_its_alerts_to_alertmanager(compose: dict[str, Any]) -> None:
    alerting = yaml.safe_load(PROMETHEUS.read_text())["alerting"]
    (manager,) = alerting["alertmanagers"]
    port = compose["services"]["alertmanager"]["ports"][0].rsplit(":", 1)[1]
    assert manager["static_configs"] == [{"targets": [f"alertmanager:{port}"]}]
    assert "alertmanager" in compose["services"]


def test_every_rule_is_routed_to_a_slack_receiver_that_exists(config: dict[str, Any]) -> None:
    receivers = {r["name"]: r for r in config["receivers"]}
    used: set[str] = set()
    for rule in rules():
        ends = route(config["route"], rule_alert(rule))
        assert len(ends) == 1, f"{rule['alert']} is sent {len(ends)} times"
        (end,) = ends
        assert end["receiver"] in receivers, f"{rule['alert']} goes to unknown receiver {end['receiver']}"
        assert receivers[end["receiver"]].get("slack_configs"), f"{rule['alert']} reaches no Slack channel"
        assert set(end["group_by"]) <= alert_labels(rule) | {"model"}, rule["alert"]
        used.add(end["receiver"])
        if rule["labels"]["severity"] == "critical":
            assert end["receiver"] == "slack-critical", rule["alert"]
            assert end["repeat_interval"] == "1h", rule["alert"]
        else:
            assert end["receiver"] == "slack", rule["alert"]
    assert used == set(receivers), f"receivers no rule reaches: {set(receivers) - used}"


def test_inhibitions_name_rules_that_exist_and_labels_both_sides_carry(config: dict[str, Any]) -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for inhibit in config["inhibit_rules"]:
        sources = [r for r in by_name.values() if matches(inhibit["source_matchers"], rule_alert(r))]
        targets = [r for r in by_name.values() if matches(inhibit["target_matchers"], rule_alert(r))]
        assert sources, f"no rule is the source of {inhibit}"
        assert targets, f"no rule is the target of {inhibit}"
        assert not {r["alert"] for r in sources} & {r["alert"] for r in targets}, f"{inhibit} mutes itself"
        for source in sources:
            for target in targets:
                for label in inhibit.get("equal", []):
                    assert label in alert_labels(source), f"{source['alert']} has no {label}: {inhibit}"
                    assert label in alert_labels(target), f"{target['alert']} has no {label}: {inhibit}"
                severity = SEVERITY[source["labels"]["severity"]]
                assert severity >= SEVERITY[target["labels"]["severity"]], f"a milder alert mutes {target['alert']}"


def _values(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _values(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _values(value, f"{path}[{i}]")
    else:
        yield path, node


def test_no_secret_in_the_alertmanager_config(config: dict[str, Any]) -> None:
    for path, value in _values(config):
        key = path.rsplit(".", 1)[-1]
        if re.search(r"url|token|password|secret|key", key, re.IGNORECASE) and key != "api_url_file":
            pytest.fail(f"{path} holds a credential in the file: use its *_file form")
        if key == "api_url_file":
            assert str(value).startswith("/run/secrets/"), path
    assert not re.search(r"hooks\.slack\.com|xox[abp]-", ALERTMANAGER.read_text())


# ---- the tools of the Prometheus project, when installed ----------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus-alertmanager prometheus)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)


def test_amtool_accepts_the_config() -> None:
    done = _run(_tool("amtool"), "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr


def test_amtool_routes_every_rule_where_the_tests_router_does(config: dict[str, Any]) -> None:
    amtool = _tool("amtool")
    for rule in rules():
        labels = [f"{k}={v}" for k, v in rule_alert(rule).items()]
        done = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        assert done.returncode == 0, done.stdout + done.stderr
        expected = ",".join(end["receiver"] for end in route(config["route"], rule_alert(rule)))
        assert done.stdout.strip() == expected, rule["alert"]


def test_promtool_accepts_prometheus_config_with_its_rules_and_alertmanager(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    scrape = yaml.safe_load(PROMETHEUS.read_text())
    scrape["rule_files"] = [str(RULES.parent / "*.yml")]  # the container's path, as mounted from the repository
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(scrape))
    done = _run(promtool, "check", "config", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


# ---- the real Alertmanager on 127.0.0.1, posting to a Slack stand-in ----------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read() or b"null")


def _wait(what: str, done: Any, *, tries: int = 300) -> None:
    for _ in range(tries):
        if done():
            return
        time.sleep(0.1)
    pytest.fail(f"Alertmanager never {what}")


@pytest.fixture
def live_alertmanager(tmp_path: Path, config: dict[str, Any]) -> Iterator[tuple[str, FakeSlack]]:
    binary = _tool("prometheus-alertmanager") if shutil.which("alertmanager") is None else _tool("alertmanager")
    slack = FakeSlack()
    secret = tmp_path / "alertmanager_slack_webhook_url"
    secret.write_text(slack.webhook_url + "\n")
    live = json.loads(json.dumps(config))
    for receiver in live["receivers"]:
        for slack_config in receiver["slack_configs"]:
            slack_config["api_url_file"] = str(secret)  # where compose's secret would be
    live["route"]["group_wait"] = "0s"  # the only change of timing: no test waits out the 30 s batch
    for child in live["route"]["routes"]:
        child.pop("group_wait", None)
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(live))
    port = _free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("w") as errors:  # the child keeps its own copy of the file
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # one instance: no gossip, no wait for peers to settle
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, f"alertmanager exited: {log.read_text()}"
            try:
                return bool(_get(f"{url}/api/v2/status"))
            except OSError:
                return False

        _wait("became ready", ready)
        yield url, slack
    finally:
        process.terminate()
        process.wait(timeout=30)
        slack.close()


def _post_alerts(url: str, alerts: list[dict[str, str]], annotations: dict[str, dict[str, str]]) -> None:
    now = datetime.now(timezone.utc)
    body = [
        {
            "labels": labels,
            "annotations": annotations.get(labels["alertname"], {}),
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
        }
        for labels in alerts
    ]
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def test_alertmanager_posts_to_slack_and_mutes_what_another_alert_explains(
    live_alertmanager: tuple[str, FakeSlack],
) -> None:
    url, slack = live_alertmanager
    by_name = {rule["alert"]: rule for rule in rules()}
    annotations = {name: {k: str(v) for k, v in rule["annotations"].items()} for name, rule in by_name.items()}
    annotations["PredwatchVersionErrorRateHigh"]["summary"] = "fraud v2: 8% of predictions fail"
    # sources first, so that Alertmanager knows them when the targets arrive
    _post_alerts(
        url,
        [
            {**rule_alert(by_name["PredwatchStoreUnreadable"])},
            {**rule_alert(by_name["PredwatchVersionErrorRateHigh"]), "model": "fraud", "version": "v2"},
        ],
        annotations,
    )
    _wait("posted the first alerts", lambda: len(slack.posts) >= 2)
    _post_alerts(
        url,
        [
            {**rule_alert(by_name["PredwatchJobFailing"]), "model": "fraud", "job": "drift"},
            {**rule_alert(by_name["PredwatchErrorRateHigh"]), "model": "fraud"},
            {**rule_alert(by_name["PredwatchErrorRateHigh"]), "model": "churn"},  # no version alert for churn
            {**rule_alert(by_name["PredwatchDatasetDrift"]), "model": "fraud"},
        ],
        annotations,
    )
    _wait("posted the alerts no other alert explains", lambda: len(slack.posts) >= 4)

    def state(name: str, model: str | None = None) -> str:
        for alert in _get(f"{url}/api/v2/alerts"):
            if alert["labels"]["alertname"] == name and alert["labels"].get("model") == model:
                return str(alert["status"]["state"])
        return "missing"

    _wait("muted the explained alerts", lambda: state("PredwatchJobFailing", "fraud") == "suppressed")
    assert state("PredwatchErrorRateHigh", "fraud") == "suppressed"
    assert state("PredwatchErrorRateHigh", "churn") == "active"
    time.sleep(1.0)  # a muted alert, had it been sent, would have been by now (group_wait is 0 s)
    sent = [p["body"]["attachments"][0] for p in slack.posts]
    titles = sorted(a["title"] for a in sent)
    assert titles == [
        "[FIRING] PredwatchDatasetDrift (fraud)",
        "[FIRING] PredwatchErrorRateHigh (churn)",
        "[FIRING] PredwatchStoreUnreadable",
        "[FIRING] PredwatchVersionErrorRateHigh (fraud)",
    ]
    version = next(a for a in sent if a["title"] == "[FIRING] PredwatchVersionErrorRateHigh (fraud)")
    assert version["text"].startswith("*critical*: fraud v2: 8% of predictions fail")
    assert version["pretext"] == "<!channel>"
    assert version["color"] == "danger"
    drift = next(a for a in sent if a["title"] == "[FIRING] PredwatchDatasetDrift (fraud)")
    assert drift["color"] == "warning"
    assert not drift.get("pretext")
    assert {p["path"] for p in slack.posts} == {"/services/T000/B000/webhooksecretXYZ"}
