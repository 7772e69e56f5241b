"""Outlier ranking in the representation space (zooflow.anomalies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

from zooflow.anomalies import outlier_scores


def write_tables(tmp_path: Path, vectors: np.ndarray, cut: int) -> list[Path]:
    """The vectors as two ``{split}_pca.parquet`` tables split at row ``cut``."""
    ids = np.array([f"g{i:04d}" for i in range(len(vectors))])
    paths = []
    for name, rows in (("test", slice(0, cut)), ("pool", slice(cut, None))):
        frame = pd.DataFrame(
            vectors[rows], columns=[f"pca_{i:02d}" for i in range(vectors.shape[1])]
        )
        frame.insert(0, "id_str", ids[rows])
        frame.to_parquet(tmp_path / f"{name}_pca.parquet")
        paths.append(tmp_path / f"{name}_pca.parquet")
    return paths


def brute_force_kth_distance(vectors: np.ndarray, k: int) -> np.ndarray:
    distances = cdist(vectors, vectors)
    np.fill_diagonal(distances, np.inf)
    return np.sort(distances, axis=1)[:, k - 1]


def test_scores_are_the_distance_to_the_kth_other_galaxy_streamed_over_tables(tmp_path: Path):
    vectors = np.random.default_rng(1).normal(size=(83, 6))
    tables = write_tables(tmp_path, vectors, cut=30)
    ranked = outlier_scores(tables, k=4, block=9)

    expected = brute_force_kth_distance(vectors, 4)
    by_id = ranked.set_index("id_str")["outlier_score"]
    np.testing.assert_allclose(
        by_id.loc[[f"g{i:04d}" for i in range(83)]].to_numpy(), expected, rtol=1e-9, atol=1e-9
    )
    assert ranked["rank"].tolist() == list(range(1, 84))
    assert ranked["outlier_score"].is_monotonic_decreasing
    assert ranked["id_str"].iloc[0] == f"g{int(np.argmax(expected)):04d}"


def test_identical_galaxies_are_each_others_neighbours_not_their_own(tmp_path: Path):
    vectors = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [10.0, 0.0]])
    ranked = outlier_scores(write_tables(tmp_path, vectors, cut=2), k=1)
    scores = ranked.set_index("id_str")["outlier_score"]
    assert scores["g0000"] == scores["g0001"] == 0 and scores["g0002"] == scores["g0003"] == 0
    assert ranked["id_str"].iloc[0] == "g0004" and scores["g0004"] == pytest.approx(np.sqrt(65))


def test_a_sampled_reference_ranks_like_the_exact_search(tmp_path: Path):
    rng = np.random.default_rng(2)
    bulk = rng.normal(size=(3000, 5))
    directions = rng.normal(size=(12, 5))
    planted = 8.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    vectors = np.concatenate([bulk, planted])
    tables = write_tables(tmp_path, vectors, cut=1000)
    exact = outlier_scores(tables, k=10).set_index("id_str")["outlier_score"]
    sampled = outlier_scores(tables, k=10, reference_size=600, seed=5)
    planted_ids = {f"g{i:04d}" for i in range(3000, 3012)}
    # The planted outliers are found either way, and the rest is ranked alike.
    assert set(sampled["id_str"].head(12)) == planted_ids
    sampled_scores = sampled.set_index("id_str")["outlier_score"].loc[exact.index]
    assert spearmanr(exact, sampled_scores).statistic > 0.9
    again = outlier_scores(tables, k=10, reference_size=600, seed=5)
    pd.testing.assert_frame_equal(sampled, again)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"k": 0}, "anomalies.k must be at least 1, got 0"),
        ({"k": 7}, "anomalies.k = 7 needs more than 7 galaxies; the catalogue has 7"),
        ({"reference_size": 1}, "anomalies.reference_size must be at least 2, got 1"),
        ({"k": 3, "reference_size": 3}, "reference_size = 3 must exceed anomalies.k = 3"),
    ],
)
def test_settings_that_cannot_rank_are_refused_naming_them(tmp_path: Path, settings, message):
    tables = write_tables(tmp_path, np.random.default_rng(3).normal(size=(7, 3)), cut=3)
    with pytest.raises(ValueError, match=message):
        outlier_scores(tables, **settings)
