"""A scratch copy of the workflow for a benchmark to run in, so the checkout is never touched."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Everything a run reads: the profile too, so a copy runs with the settings a user's run gets.
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "scripts",
    "config",
    "envs",
    "zooflow",
    "report",
    "profiles",
)


def copy_workflow(dest: Path) -> Path:
    """Copy each part of the workflow into ``dest`` that is not there yet.

    A kept folder (``--keep``) keeps its earlier copy and results; give a new folder to measure
    changed code.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source, target = REPO / part, dest / part
        if not target.exists():
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    return dest
