"""Headless Chromium for tests: find the binary, dump a page's DOM with its console, take a screenshot.

Debian's package ``chromium`` installs ``/usr/bin/chromium`` (``chromium-browser`` elsewhere); `.ci/run`
installs it when missing.  Every run gets its own profile directory so runs never share state.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BINARIES = ("chromium", "chromium-browser")
FLAGS = ("--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run", "--mute-audio")
_CONSOLE = re.compile(r":INFO:CONSOLE[^\]]*\] \"(.*)\", source: ")


@dataclass(frozen=True)
class Page:
    """What Chromium saw: the DOM after scripts ran, and the console messages the page produced."""

    dom: str
    console: list[str]


def find_chromium() -> str | None:
    """The path of a Chromium binary on PATH, or ``None``."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(binary: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="predwatch-chromium-") as profile:
        command = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr[-2000:]}")
    return result


def load(binary: str, page: Path, budget_ms: int = 5000, timeout: float = 90.0) -> Page:
    """Open a local file, let its scripts run for ``budget_ms`` of virtual time, return DOM and console."""
    args = ["--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", "--dump-dom"]
    result = _run(binary, [*args, page.resolve().as_uri()], timeout)
    return Page(dom=result.stdout, console=_CONSOLE.findall(result.stderr))


def screenshot(binary: str, page: Path, out: Path, size: tuple[int, int] = (1200, 2400), timeout: float = 90.0) -> Path:
    """A PNG of the page's first ``size`` pixels."""
    args = [f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=5000", f"--screenshot={out.resolve()}"]
    _run(binary, [*args, page.resolve().as_uri()], timeout)
    return out
