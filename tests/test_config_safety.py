"""Configuration and outputs that hostile or careless input cannot abuse: no secret in an error, no alias
bomb, no object-constructing tag, no report outside ``--out``."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzers.cli import main
from analyzers.config.loader import ConfigError, load_config, parse_config
from analyzers.report.naming import report_file_name

SECRET = "xoxb-1234-very-secret"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("yaml_value", "key"),
    [
        ("window: '${PW_VALUE}'", "models.fraud.drift.window"),
        ("window: '1${PW_VALUE}'", "models.fraud.drift.window"),
        ("schedule: {cron: '${PW_VALUE}'}", "models.fraud.drift.schedule"),
        ("schedule: {every: '${PW_VALUE}'}", "models.fraud.drift.schedule.every"),
    ],
    ids=["duration", "part-of-a-duration", "cron", "interval"],
)
def test_no_error_quotes_a_value_from_the_environment(monkeypatch, yaml_value: str, key: str) -> None:
    monkeypatch.setenv("PW_VALUE", SECRET)
    (problem,) = _problems(f"models:\n  fraud:\n    drift:\n      {yaml_value}\n")
    assert SECRET not in problem
    assert "1234" not in problem, "not even a part of it"
    assert problem.startswith(f"cfg.yml:4: {key}: ")
    assert "$PW_VALUE" in problem, "it says which variable the value came from"


def test_a_secret_with_quotes_and_backslashes_is_not_quoted_escaped_either(monkeypatch) -> None:
    value = 'it\'s\\a "secret"'
    monkeypatch.setenv("PW_VALUE", value)
    (problem,) = _problems("models:\n  fraud:\n    drift: {window: '${PW_VALUE}'}\n")
    for form in (value, repr(value)[1:-1], "secret"):
        assert form not in problem


def test_values_written_in_the_file_are_still_quoted() -> None:
    (problem,) = _problems("models:\n  fraud:\n    drift: {window: 'soon'}\n")
    assert "invalid duration 'soon'" in problem


BILLION_LAUGHS = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def test_an_alias_bomb_is_refused_with_a_clear_error() -> None:
    (problem,) = _problems(BILLION_LAUGHS)  # 9**9 values once expanded
    assert "more than 100,000 values once YAML aliases are expanded" in problem
    assert problem.startswith("cfg.yml:")


def test_a_few_aliases_still_work() -> None:
    config = parse_config("models:\n  a: {ops: &ops {window: 1h, max_error_rate: 0.1}}\n  b: {ops: *ops}\n")
    assert config.models["b"].ops.max_error_rate == 0.1


def test_merge_keys_bring_in_an_anchor_and_own_keys_override() -> None:
    config = parse_config(
        "models:\n"
        "  a: {ops: &ops {window: 1h, max_error_rate: 0.1, min_rows: 50}}\n"
        "  b: {ops: {<<: *ops, max_error_rate: 0.2}}\n"
        "  c:\n"
        "    ops:\n"
        "      max_error_rate: 0.3\n"
        "      <<: [{max_error_rate: 0.9, window: 2h}, *ops]\n"
    )
    assert config.models["b"].ops.max_error_rate == 0.2
    assert config.models["b"].ops.min_rows == 50
    assert config.models["c"].ops.max_error_rate == 0.3, "the mapping's own key wins"
    assert config.models["c"].ops.window == 2 * config.models["a"].ops.window, "the first merged mapping wins"
    assert config.models["c"].ops.min_rows == 50


def test_an_own_key_after_or_before_a_merge_key_is_reported_at_its_own_line() -> None:
    for own_first in (True, False):
        own, merge = "      max_error_rate: lots\n", "      <<: *ops\n"
        body = own + merge if own_first else merge + own
        (problem,) = _problems("models:\n  a: {ops: &ops {window: 1h, max_error_rate: 0.1}}\n  b:\n    ops:\n" + body)
        line = 5 if own_first else 6
        assert problem.startswith(f"cfg.yml:{line}: models.b.ops.max_error_rate: "), problem


def test_two_merge_keys_in_one_mapping_are_a_duplicate_key() -> None:
    problems = _problems("models:\n  a: {ops: &ops {window: 1h}}\n  b:\n    ops:\n      <<: *ops\n      <<: *ops\n")
    assert problems == ["cfg.yml:6: models.b.ops: duplicate merge key (<<)"], problems


def test_a_merge_key_on_a_plain_value_is_an_error_with_its_line() -> None:
    (problem,) = _problems("models:\n  fraud:\n    ops:\n      <<: 3\n")
    assert problem.startswith("cfg.yml:4: models.fraud.ops: a merge key (<<) takes a mapping")


def test_an_alias_inside_its_own_anchor_is_an_error() -> None:
    (problem,) = _problems("models: &m {fraud: {ops: *m}}\n")
    assert "alias refers to the anchor it is inside of" in problem


@pytest.mark.parametrize(
    "text",
    [
        "models: !!python/name:os.system ''\n",
        "models:\n  fraud: !!python/object/apply:os.system ['echo owned']\n",
        "kibana: {url: !secret kibana-url}\n",
        "models: !!set {a, b}\n",
    ],
    ids=["python-name", "python-object-apply", "local-tag", "set"],
)
def test_tags_that_construct_objects_give_a_clean_error_with_file_and_line(text: str) -> None:
    problems = _problems(text)
    assert any("unsupported YAML tag" in p for p in problems), problems
    assert all(p.startswith("cfg.yml:") for p in problems)


def test_check_config_reports_a_python_tag_without_a_traceback(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("store:\n  local: {path: logs}\nmodels:\n  fraud: !!python/name:os.system ''\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: models.fraud: unsupported YAML tag tag:yaml.org,2002:python/name:os.system" in err
    assert "Traceback" not in err


def test_load_config_names_the_file_in_alias_bomb_errors(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError, match=r"bomb\.yml:\d+: \(top level\): more than 100,000 values"):
        load_config(path)


@pytest.mark.parametrize("model", ["../../escaped", "a/b", "..", ".hidden", "", "x" * 300, "ü/../.."])
def test_report_file_names_are_plain_names(model: str) -> None:
    name = report_file_name(model)
    assert "/" not in name
    assert not name.startswith(".")
    assert name.endswith(".html")
    assert len(name) <= 120


def test_report_file_names_keep_plain_names_and_never_collide() -> None:
    assert report_file_name("fraud") == "fraud.html"
    assert report_file_name("eta-v2.1") == "eta-v2.1.html"
    assert report_file_name("a/b") != report_file_name("a_b")


def test_report_of_a_model_named_to_escape_stays_inside_out(tmp_path: Path, capsys) -> None:
    (tmp_path / "logs").mkdir()
    config = tmp_path / "predwatch.yml"
    config.write_text(
        "store:\n  local: {path: logs}\nmodels:\n  '../../escaped': {ops: {window: 1h}}\n  fraud: {ops: {window: 1h}}\n"
    )
    out = tmp_path / "deep" / "er" / "out"
    out.mkdir(parents=True)
    code = main(["report", "--config", str(config), "--window", "1d", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html"))
    assert written == ["deep/er/out/escaped-e44bc97d.html", "deep/er/out/fraud.html"]
