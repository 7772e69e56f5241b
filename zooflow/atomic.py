"""Files that appear whole or not at all.

Every output a job writes goes through a temporary sibling that is renamed onto the real name
only when writing finished: a crash, a kill or a full disk never leaves a half-written file that
a rerun (or Snakemake) would take for a finished one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an error, deleted when it raises. The temporary name ends like ``path`` (so pandas
    still infers ``.csv.gz`` compression), and carries the process id (no two writers clash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial.{os.getpid()}.{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
