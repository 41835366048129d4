"""Import contracts of docs/architecture.md, checked on the source: each failure lists every offending import.

- ``analyzers/stats/`` is pure: it imports nothing of predwatch outside ``stats`` (no store, no config) and
  nothing that does I/O, and calls no ``open``;
- only ``analyzers/store/`` imports DuckDB or Elasticsearch;
- ``logshipper/`` (what services install) imports nothing of ``analyzers``, pandas, numpy, DuckDB or
  Elasticsearch;
- findings and statistics do not depend on the parts that use them (jobs, alerts, report, store adapters).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What pure statistics may import: computation only, nothing that touches files, sockets or processes.
STATS_MAY_IMPORT = {
    "__future__",
    "abc",
    "bisect",
    "collections",
    "contextlib",
    "dataclasses",
    "enum",
    "functools",
    "heapq",
    "itertools",
    "math",
    "numbers",
    "re",
    "statistics",
    "typing",
    "warnings",
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "threadpoolctl",
    "analyzers.stats",
}
STORE_CLIENTS = ("duckdb", "elasticsearch")
LEAN = ("analyzers", "pandas", "numpy", "duckdb", "elasticsearch", "scipy", "pyarrow")


def _imports(package: str, root: Path = ROOT) -> Iterator[tuple[str, int, str]]:
    """(file, line, imported module) for every import, at any depth (lazy ones too), in a package's files."""
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        file = path.relative_to(root).as_posix()
        # The package a relative import starts from: the module's own package (``__init__`` is the package).
        here = path.relative_to(root).with_suffix("").parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield file, node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                base = list(here[: len(here) - node.level + 1]) if node.level else []
                yield file, node.lineno, ".".join([*base, *([node.module] if node.module else [])])


def _under(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _report(what: str, violations: list[str]) -> str:
    return f"{what}: {len(violations)} violation(s)\n  " + "\n  ".join(violations)


def test_stats_is_pure_computation() -> None:
    violations = [
        f"{file}:{line} imports {name}"
        for file, line, name in _imports("analyzers.stats")
        if not _under(name, STATS_MAY_IMPORT)
    ]
    for path in sorted((ROOT / "analyzers" / "stats").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "input"):
                violations.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.id}()")
    assert not violations, _report("analyzers/stats/ must stay pure (no store, no config, no I/O)", violations)


def test_only_the_store_imports_duckdb_or_elasticsearch() -> None:
    violations = [
        f"{file}:{line} imports {name}"
        for package in ("analyzers", "logshipper")
        for file, line, name in _imports(package)
        if _under(name, STORE_CLIENTS) and not file.startswith("analyzers/store/")
    ]
    assert not violations, _report("only analyzers/store/ may import duckdb or elasticsearch", violations)


def test_the_logger_stays_lean() -> None:
    violations = [f"{file}:{line} imports {name}" for file, line, name in _imports("logshipper") if _under(name, LEAN)]
    assert not violations, _report("logshipper/ must not import analyzers or heavy libraries", violations)


def test_findings_and_stats_do_not_depend_on_their_users() -> None:
    users = ("analyzers.jobs", "analyzers.alerts", "analyzers.report", "analyzers.store", "analyzers.cli")
    violations = [
        f"{file}:{line} imports {name}"
        for package in ("analyzers.findings", "analyzers.stats")
        for file, line, name in _imports(package)
        if _under(name, users)
    ]
    assert not violations, _report(
        "findings and stats are used by jobs, alerts and reports, not the reverse", violations
    )


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The contracts above would pass vacuously if imports inside functions or relative ones were missed."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lazy.py").write_text(
        "def f():\n    from elasticsearch import Elasticsearch\n    import duckdb.typing\n"
    )
    (package / "relative.py").write_text("from .lazy import f\nfrom . import lazy\n")
    found = {(file, name) for file, _line, name in _imports("pkg", root=tmp_path)}
    assert found == {
        ("pkg/lazy.py", "elasticsearch"),
        ("pkg/lazy.py", "duckdb.typing"),
        ("pkg/relative.py", "pkg.lazy"),
        ("pkg/relative.py", "pkg"),
    }
