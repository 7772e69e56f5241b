"""JSON files that any parser reads: a number that is not finite is written as null.

Python's json module writes NaN and Infinity, which JSON does not have (browsers, jq and
strict parsers refuse the file). Every JSON file zooflow writes goes through here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def strict(value):
    """``value`` with NaN/±inf as None and numpy scalars and arrays as plain Python."""
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [strict(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value, **kwargs) -> str:
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def write_json(path: str | Path, value) -> None:
    Path(path).write_text(dumps(value, indent=2) + "\n")
