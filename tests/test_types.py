"""mypy (with the pydantic plugin, configured in pyproject.toml) finds no error in logshipper/ and analyzers/."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_type_errors(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the [tool.mypy] section of pyproject.toml names the files and the plugin
    report, errors, status = api.run([])
    problems = [line for line in report.splitlines() if ": error:" in line]
    assert status == 0, f"mypy found {len(problems)} error(s):\n" + "\n".join(problems or [report, errors])
