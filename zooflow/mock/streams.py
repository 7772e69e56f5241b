"""Random streams of the mock survey: one ``numpy.random.SeedSequence`` per (purpose, galaxy).

Galaxy ``i``'s numbers for one purpose come from ``SeedSequence(seed, spawn_key=(stream, i))``, so
they depend neither on the number of worker processes nor on the size of the survey.
"""

from __future__ import annotations

import numpy as np

STREAM_LATENTS = 0
STREAM_RENDER = 1
STREAM_VOTES = 2


def _galaxy_seed_sequence(seed: int, index: int, stream: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(stream, index))


def galaxy_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(_galaxy_seed_sequence(seed, index, stream))
