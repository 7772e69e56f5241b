"""Mock volunteers walking the decision tree: vote counts drawn from the true probabilities."""

from __future__ import annotations

import numpy as np

from zooflow.mock.streams import STREAM_VOTES, galaxy_rng
from zooflow.schema import Schema


def simulate_votes(
    fractions: np.ndarray, n_volunteers: np.ndarray, schema: Schema, seed: int
) -> np.ndarray:
    """Volunteers walk the tree: (galaxies, answers) integer vote counts.

    A root question is ``Multinomial(n_volunteers, p_question)``; a child question is
    ``Multinomial(votes[parent answer], p_question)``, so its total equals the parent count.
    """
    votes = np.zeros(fractions.shape, dtype=np.int64)
    for i in range(fractions.shape[0]):
        rng = galaxy_rng(seed, i, STREAM_VOTES)
        for q, parent in zip(schema.questions, schema.parent_index, strict=True):
            n_asked = int(n_volunteers[i]) if parent is None else int(votes[i, parent])
            p = fractions[i, q.indices]
            votes[i, q.indices] = rng.multinomial(n_asked, p / p.sum())
    return votes
