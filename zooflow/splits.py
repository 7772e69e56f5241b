"""Deterministic train/evaluation splits from a hash of each galaxy's id.

Each galaxy gets ``u = (first 53 bits of sha256(f"{seed}:{id_str}")) / 2**53``, a number
uniform in [0, 1) that depends on nothing but the seed and the galaxy's own id. With ``t, v, i`` the test, val and initial fractions:

* ``u < t``              -> ``test``    fixed evaluation set
* ``t <= u < t + v``     -> ``val``     validation set for early stopping
* ``t + v <= u < t+v+i`` -> ``initial`` first labelled set for active learning
* otherwise              -> ``pool``    unlabelled pool; its labels are held back for the oracle

Galaxies without votes (``labelled`` False) cannot be evaluated or trained on, so they always go
to ``pool``. Because a galaxy's split is a function of (seed, id_str, labelled) alone, adding
galaxies to the catalogue never moves an existing one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.atomic import atomic_path
from zooflow.catalogue import iter_catalogue_columns
from zooflow.ids import hash_uniform

log = logging.getLogger(__name__)

SPLITS = ("test", "val", "initial", "pool")


def check_fractions(test_fraction: float, val_fraction: float, initial_fraction: float) -> None:
    """Each fraction must lie in [0, 1) and together they must leave room for a pool (< 1)."""
    fractions = {
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "initial_fraction": initial_fraction,
    }
    for name, value in fractions.items():
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not (np.isfinite(value) and 0.0 <= value < 1.0):
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    total = sum(float(v) for v in fractions.values())
    if total >= 1.0:
        raise ValueError(
            f"test_fraction + val_fraction + initial_fraction must be below 1 so that some "
            f"galaxies remain in the pool; got {test_fraction} + {val_fraction} + "
            f"{initial_fraction} = {total:g}"
        )


def assign_splits(
    id_str: Iterable[str],
    labelled: Iterable[bool],
    *,
    seed: int,
    test_fraction: float,
    val_fraction: float,
    initial_fraction: float,
) -> np.ndarray:
    """Split name (one of :data:`SPLITS`) per galaxy; see the module docstring for the rule."""
    check_fractions(test_fraction, val_fraction, initial_fraction)
    ids = [str(galaxy) for galaxy in id_str]
    labelled = np.asarray(labelled)
    if labelled.shape != (len(ids),):
        raise ValueError(f"got {len(ids)} ids but labelled has shape {labelled.shape}")
    if labelled.dtype != np.bool_:
        raise ValueError(f"labelled must be booleans, got dtype {labelled.dtype}")
    u = hash_uniform(ids, seed)
    edges = np.cumsum([test_fraction, val_fraction, initial_fraction])
    # side="right": u equal to an edge belongs to the next split, as u < edge is strict.
    split_index = np.searchsorted(edges, u, side="right")
    split_index[~labelled] = SPLITS.index("pool")
    return np.asarray(SPLITS, dtype=object)[split_index]


def write_splits(
    catalogue_path: str | Path,
    out_csv: str | Path,
    *,
    seed: int,
    test_fraction: float,
    val_fraction: float,
    initial_fraction: float,
) -> pd.Series:
    """Assign every catalogue galaxy a split; write CSV ``id_str,split`` in catalogue order.

    The catalogue is read and the CSV written block by block (a galaxy's split depends on
    nothing but its own id), so memory stays flat whatever the survey's size. The CSV is
    written to a temporary name and renamed, so a partial file never appears. Returns the
    number of galaxies per split (in :data:`SPLITS` order), which is also logged.
    """
    check_fractions(test_fraction, val_fraction, initial_fraction)
    counts = pd.Series(0, index=list(SPLITS), dtype=np.int64)
    n_unlabelled = 0
    with atomic_path(out_csv) as temporary, open(temporary, "w", newline="") as out:
        out.write("id_str,split\n")
        for block in iter_catalogue_columns(catalogue_path, ["id_str", "labelled"]):
            if not pd.api.types.is_bool_dtype(block["labelled"]):
                raise ValueError(
                    f"{catalogue_path}: column 'labelled' must be boolean, got "
                    f"{block['labelled'].dtype}"
                )
            labelled = block["labelled"].to_numpy(dtype=bool)
            splits = pd.DataFrame(
                {
                    "id_str": block["id_str"].astype(str).to_numpy(),
                    "split": assign_splits(
                        block["id_str"],
                        labelled,
                        seed=seed,
                        test_fraction=test_fraction,
                        val_fraction=val_fraction,
                        initial_fraction=initial_fraction,
                    ),
                }
            )
            splits.to_csv(out, index=False, header=False)
            counts += splits["split"].value_counts().reindex(SPLITS, fill_value=0)
            n_unlabelled += int((~labelled).sum())
    log.info(
        "split %d galaxies (seed %d, %d unlabelled kept in pool): %s -> %s",
        int(counts.sum()),
        seed,
        n_unlabelled,
        ", ".join(f"{name} {count}" for name, count in counts.items()),
        out_csv,
    )
    for name in ("test", "val"):
        if counts[name] == 0 and counts.sum() > 0:
            log.warning("split %r is empty: nothing to evaluate or validate on", name)
    return counts
