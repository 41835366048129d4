"""Peak resident memory of the running process, shared by the benchmarks (each measures in its own process)."""

from __future__ import annotations

import resource


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: Linux's ``VmHWM``, else ``ru_maxrss``.

    ``ru_maxrss`` of a process started by ``subprocess`` carries over its parent's peak (Linux keeps the
    larger across ``exec``), so a benchmark whose parent generated the data would report the parent's.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
