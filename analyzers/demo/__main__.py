"""``python -m analyzers.demo``: the same as ``predwatch demo``."""

from analyzers.cli import main

raise SystemExit(main(["demo"]))
