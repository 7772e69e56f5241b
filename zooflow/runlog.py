"""Send a step's logging, warnings and any uncaught exception to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Log to ``path`` (and stderr) for the duration; a failure's traceback lands there too.

    Snakemake points users at a failed job's log file, so the reason must be in it, not only
    in the scheduler's stderr.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    root.addHandler(console)
    logging.captureWarnings(True)
    try:
        yield logging.getLogger("zooflow")
    except BaseException as err:
        logging.getLogger("zooflow").error(
            "step failed: %s\n%s", err, "".join(traceback.format_exception(err))
        )
        raise
    finally:
        root.removeHandler(handler)
        root.removeHandler(console)
        handler.close()
