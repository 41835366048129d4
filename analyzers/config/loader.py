"""Load the YAML configuration: ``${VAR}``/``${VAR:-default}`` from the environment, validation
errors that name the file, the line and the key, all of them at once.

Secrets come from the environment only: an error message quotes the variable's name, never its value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from analyzers.config.models import Config

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file: where, which key, and what."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists every reason found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and the directory relative paths are taken from."""

    config: Config
    path: Path

    @property
    def directory(self) -> Path:
        return self.path.parent


def _plain(node: yaml.Node, file: str, problems: list[ConfigProblem], lines: dict[tuple, int], path: tuple) -> Any:
    """A YAML node as Python values, recording each key's line and interpolating the environment."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            where = (*path, key)
            if key in out:
                problems.append(ConfigProblem(file, key_node.start_mark.line + 1, _dotted(where), "duplicate key"))
            lines[where] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, file, problems, lines, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, file, problems, lines, (*path, i)) for i, item in enumerate(node.value)]
    value = yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value
    if isinstance(value, str) and "${" in value:
        return _interpolate(value, file, node.start_mark.line + 1, _dotted(path), problems)
    return value


def _interpolate(text: str, file: str, line: int, key: str, problems: list[ConfigProblem]) -> Any:
    """The text with each variable substituted, kept a string: ``#ml-alerts`` or a numeric password arrive
    intact, and the field's model turns ``"150"`` or ``"true"`` into a number or flag where it wants one."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                problems.append(ConfigProblem(file, line, key, f"environment variable {name} is not set"))
                return ""
            return default
        return value

    return _VAR.sub(replace, text)


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _line_of(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def parse_config(text: str, file: str = "<config>") -> Config:
    """Validate configuration text; raise :class:`ConfigError` with every problem found."""
    problems: list[ConfigProblem] = []
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(file, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    lines: dict[tuple, int] = {}
    data = {} if node is None else _plain(node, file, problems, lines, ())
    if not isinstance(data, dict):
        problems.append(ConfigProblem(file, 1, "", "the configuration must be a mapping of keys"))
        raise ConfigError(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(ConfigProblem(file, _line_of(loc, lines), _dotted(loc), message))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and validate a configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(file), None, "", f"cannot read: {exc.strerror}")]) from None
    return LoadedConfig(parse_config(text, str(file)), file.resolve())
