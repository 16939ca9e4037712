"""How many CPU cores this process may use.

``os.cpu_count()`` counts the machine's cores; a container or ``taskset`` may allow fewer, and
threads beyond those only take turns. Python 3.13 has ``os.process_cpu_count()`` for this.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may use (its affinity where the OS has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
