"""How busy the test suite keeps the machine's cores: a pytest plugin.

    PYTHONPATH=benchmarks .venv/bin/pytest -p suite_cpu -n 0 -m "slow or not slow"

For each test (setup, call and teardown) it takes the wall time and the busy CPU time of the whole
machine (from /proc/stat, so Snakemake's jobs and the SLURM node count too), prints the sum and
the share of the cores kept busy, and the test files by wall time. Run in one process (`-n 0`):
this share is what tells how much running the suite on several workers can gain.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest

_TICKS = os.sysconf("SC_CLK_TCK")
_per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def _busy_cpu_seconds() -> float:
    """CPU seconds the machine spent on anything but idle and I/O wait since boot."""
    with open("/proc/stat") as stream:
        ticks = [int(value) for value in stream.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    wall, busy = time.monotonic(), _busy_cpu_seconds()
    yield
    totals = _per_file[item.nodeid.split("::")[0]]
    totals[0] += time.monotonic() - wall
    totals[1] += _busy_cpu_seconds() - busy


def pytest_terminal_summary(terminalreporter):
    wall = sum(totals[0] for totals in _per_file.values())
    busy = sum(totals[1] for totals in _per_file.values())
    cores = os.cpu_count() or 1
    write = terminalreporter.write_line
    write(f"suite_cpu: {wall:.0f} s of tests kept {busy:.0f} CPU-s busy on {cores} cores")
    write(f"suite_cpu: share of the cores busy {busy / max(wall, 1e-9) / cores:.2f}")
    for name, (file_wall, file_busy) in sorted(_per_file.items(), key=lambda kv: -kv[1][0])[:12]:
        share = file_busy / max(file_wall, 1e-9) / cores
        write(f"suite_cpu:   {file_wall:6.0f} s  {file_busy:6.0f} CPU-s  {share:.2f}  {name}")
