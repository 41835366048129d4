"""``python -m analyzers.demo [--days N] [--per-day N] [--seed N] [--out DIR]``: the same as ``predwatch demo``."""

import sys

from analyzers.cli import main

raise SystemExit(main(["demo", *sys.argv[1:]]))
