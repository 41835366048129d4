"""Load the YAML configuration: ``${VAR}``/``${VAR:-default}`` from the environment, validation
errors that name the file, the line and the key, all of them at once.

Secrets come from the environment only: an error message quotes the variable's name, never its value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
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
    """A validated configuration, the directory relative paths are taken from, and the line of each key
    (by its path, e.g. ``("models", "fraud", "drift")``) for checks that report where a problem is."""

    config: Config
    path: Path
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, *path: str | int) -> int | None:
        """The line of a key, or of its nearest enclosing key."""
        return _line_of(tuple(path), self.lines)

    @property
    def directory(self) -> Path:
        return self.path.parent


_MAX_VALUES = 100_000  # values after YAML aliases are expanded: a configuration holds hundreds
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_COLLECTION_TAGS = frozenset((_YAML + "map", _YAML + "seq"))
_MERGE = _YAML + "merge"


class _TooLarge(Exception):
    """Expanding the file's aliases gives more values than any configuration holds (a "billion laughs")."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


@dataclass
class _Reading:
    """What reading one file's YAML nodes collects: problems, each key's line, and which environment
    variables were substituted where (their values must never appear in an error)."""

    file: str
    lenient: frozenset[str] = frozenset()  # top-level sections where an unset variable is left empty
    problems: list[ConfigProblem] = field(default_factory=list)
    lines: dict[tuple, int] = field(default_factory=dict)
    substituted: dict[tuple, list[tuple[str, str]]] = field(default_factory=dict)
    unreadable: set[tuple] = field(default_factory=set)
    values: int = 0

    def problem(self, node: yaml.Node, path: tuple, message: str) -> None:
        """A value that cannot be read: reported here, and not again by the validation that follows."""
        self.unreadable.add(path)
        self.problems.append(ConfigProblem(self.file, node.start_mark.line + 1, _dotted(path), message))


def _plain(node: yaml.Node, reading: _Reading, path: tuple, active: frozenset[int] = frozenset()) -> Any:
    """A YAML node as Python values, recording each key's line and interpolating the environment.

    Only plain values, lists and mappings are read (no tags that construct objects); aliases are
    expanded within a bound, and an alias inside its own anchor is an error.
    """
    reading.values += 1
    if reading.values > _MAX_VALUES:
        raise _TooLarge(node.start_mark.line + 1)
    if id(node) in active:
        reading.problem(node, path, "an alias refers to the anchor it is inside of")
        return None
    reading.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, reading, path)
    if node.tag not in _COLLECTION_TAGS:
        reading.problem(node, path, f"unsupported YAML tag {node.tag}: only plain values, lists and mappings")
        return None
    inside = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        # Merged keys are read first, so that the mapping's own keys, wherever they stand, keep their lines.
        merges = [(k, v) for k, v in node.value if k.tag == _MERGE]
        for key_node, _ in merges[1:]:
            line = key_node.start_mark.line + 1
            reading.problems.append(ConfigProblem(reading.file, line, _dotted(path), "duplicate merge key (<<)"))
        inherited = _merged(merges[0][1], reading, path, inside) if merges else {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = key_node.value
            where = (*path, key)
            if key in out:
                line = key_node.start_mark.line + 1
                reading.problems.append(ConfigProblem(reading.file, line, _dotted(where), "duplicate key"))
            reading.lines[where] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, reading, where, inside)
        return {**inherited, **out}
    return [_plain(item, reading, (*path, i), inside) for i, item in enumerate(node.value)]


def _merged(node: yaml.Node, reading: _Reading, path: tuple, active: frozenset[int]) -> dict[str, Any]:
    """The keys a merge key (``<<: *defaults`` or ``<<: [*a, *b]``) brings in; with a list, the first mapping
    that holds a key gives it, and the mapping's own keys override them all (YAML's merge key type)."""
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: dict[str, Any] = {}
    for source in sources:
        if not isinstance(source, yaml.MappingNode):
            reading.problem(source, path, "a merge key (<<) takes a mapping or a list of mappings")
            continue
        value = _plain(source, reading, path, active)
        out.update({k: v for k, v in value.items() if k not in out})
    return out


def _scalar(node: yaml.ScalarNode, reading: _Reading, path: tuple) -> Any:
    if node.tag not in _SCALAR_TAGS:
        reading.problem(node, path, f"unsupported YAML tag {node.tag}: only plain values, lists and mappings")
        return None
    if node.tag == _YAML + "str":
        value = node.value
    else:
        try:
            value = yaml.safe_load(yaml.serialize(node))
        except yaml.YAMLError as exc:
            reading.problem(node, path, f"not a valid {node.tag.removeprefix(_YAML)}: {getattr(exc, 'problem', exc)}")
            return None
    if isinstance(value, str) and "${" in value:
        return _interpolate(value, reading, node.start_mark.line + 1, path)
    return value


def _interpolate(text: str, reading: _Reading, line: int, path: tuple) -> Any:
    """The text with each variable substituted, kept a string: ``#ml-alerts`` or a numeric password arrive
    intact, and the field's model turns ``"150"`` or ``"true"`` into a number or flag where it wants one."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None and path and path[0] in reading.lenient:
                return ""
            if default is None:
                reading.problems.append(
                    ConfigProblem(reading.file, line, _dotted(path), f"environment variable {name} is not set")
                )
                return ""
            return default
        reading.substituted.setdefault(path, []).append((name, value))
        return value

    return _VAR.sub(replace, text)


def _without_secrets(message: str, loc: tuple, reading: _Reading) -> str:
    """The message with every value substituted from the environment at ``loc``, above or below it
    replaced by the variable's name, and a note saying which variables the value came from."""
    names: list[str] = []
    for path, substitutions in reading.substituted.items():
        if path[: len(loc)] != loc and loc[: len(path)] != path:
            continue
        for name, value in sorted(substitutions, key=lambda s: -len(s[1])):
            if name not in names:
                names.append(name)
            for form in {value, repr(value)[1:-1]} - {""}:
                message = message.replace(form, f"<${name}>")
    if names:
        variables = ", ".join(f"${n}" for n in names)
        message += f" (the value comes from {variables}; not shown)"
    return message


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _line_of(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def parse_config(text: str, file: str = "<config>", *, lenient: frozenset[str] = frozenset()) -> Config:
    """Validate configuration text; raise :class:`ConfigError` with every problem found.

    No message quotes a value taken from the environment: it names the key and the variable instead.
    In the top-level sections named in ``lenient`` an unset variable is left empty instead (a dry run
    needs no Slack token).
    """
    return _parse(text, file, lenient)[0]


def _parse(text: str, file: str, lenient: frozenset[str]) -> tuple[Config, dict[tuple, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(file, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    except RecursionError:
        raise ConfigError([ConfigProblem(file, None, "", "not valid YAML: nested too deeply")]) from None
    reading = _Reading(file, lenient)
    try:
        data = {} if node is None else _plain(node, reading, ())
    except _TooLarge as exc:
        message = f"more than {_MAX_VALUES:,} values once YAML aliases are expanded: refused (an alias bomb?)"
        raise ConfigError([ConfigProblem(file, exc.line, "", message)]) from None
    except RecursionError:
        raise ConfigError([ConfigProblem(file, None, "", "nested too deeply")]) from None
    problems = reading.problems
    if not isinstance(data, dict):
        problems.append(ConfigProblem(file, 1, "", "the configuration must be a mapping of keys"))
        raise ConfigError(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, reading))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config, reading.lines


def _validation_problems(exc: ValidationError, reading: _Reading) -> list[ConfigProblem]:
    out = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if any(loc[: len(path)] == path for path in reading.unreadable):
            continue
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
        message = _without_secrets(message, loc, reading)
        out.append(ConfigProblem(reading.file, _line_of(loc, reading.lines), _dotted(loc), message))
    return out


def load_config(path: str | os.PathLike[str], *, lenient: frozenset[str] = frozenset()) -> LoadedConfig:
    """Read and validate a configuration file (see :func:`parse_config` for ``lenient``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(file), None, "", f"cannot read: {exc.strerror}")]) from None
    config, lines = _parse(text, str(file), lenient)
    return LoadedConfig(config, file.resolve(), lines)
