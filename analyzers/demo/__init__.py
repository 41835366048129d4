"""``predwatch demo``: the whole loop on one machine, with known incidents to catch."""

from analyzers.demo.run import run_demo

__all__ = ["run_demo"]
