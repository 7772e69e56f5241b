"""Representations: the trunk's features as tables, and a principal-component copy."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from zooflow.posteriors import STRING
from zooflow.representations import fit_pca, nearest_neighbours, write_representations


def correlated_features(n: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3)) * [5.0, 2.0, 1.0]
    mixing = rng.normal(size=(3, width))
    return 100.0 + latent @ mixing + 0.05 * rng.normal(size=(n, width))  # offset tests precision


def test_streamed_components_equal_a_direct_decomposition():
    features = correlated_features(500, 12, seed=1)
    projection = fit_pca(np.array_split(features, 7), n_components=4)

    centred = features - features.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(projection.mean, features.mean(axis=0), rtol=1e-12)
    for k in range(3):  # the three real directions (the fourth is noise, its sign arbitrary)
        assert abs(projection.components[k] @ vt[k]) == pytest.approx(1.0, abs=1e-6)
    ratio = singular**2 / (singular**2).sum()
    np.testing.assert_allclose(projection.explained_variance_ratio, ratio[:4], rtol=1e-6)
    assert projection.explained_variance_ratio[:3].sum() > 0.99
    # Each component's largest loading is positive, so reruns give the same signs.
    rows = np.arange(4)
    assert (projection.components[rows, np.abs(projection.components).argmax(axis=1)] > 0).all()


def write_features(path: Path, ids, features) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("id_str", data=np.array(ids, dtype=object), dtype=STRING)
        f.create_dataset("features", data=features.astype(np.float32))


def test_tables_per_split_and_one_projection_fitted_on_all(tmp_path: Path):
    features = correlated_features(90, 8, seed=2)
    ids = [f"g{i}" for i in range(90)]
    write_features(tmp_path / "test.h5", ids[:30], features[:30])
    write_features(tmp_path / "pool.h5", ids[30:], features[30:])
    write_features(tmp_path / "val.h5", [], features[:0])  # an empty split
    files = {name: tmp_path / f"{name}.h5" for name in ("test", "pool", "val")}
    projection = write_representations(files, tmp_path / "out", n_components=3, block=16)

    full = pd.read_parquet(tmp_path / "out" / "pool.parquet")
    assert full["id_str"].tolist() == ids[30:]
    assert list(full.columns) == ["id_str"] + [f"feature_{i:03d}" for i in range(8)]
    np.testing.assert_allclose(full.iloc[:, 1:].to_numpy(), features[30:], rtol=1e-6)
    compressed = pd.read_parquet(tmp_path / "out" / "test_pca.parquet")
    assert list(compressed.columns) == ["id_str", "pca_00", "pca_01", "pca_02"]
    expected = (features[:30].astype(np.float32) - projection.mean) @ projection.components.T
    np.testing.assert_allclose(compressed.iloc[:, 1:].to_numpy(), expected, rtol=1e-4, atol=1e-4)
    assert pd.read_parquet(tmp_path / "out" / "val_pca.parquet").empty
    saved = json.loads((tmp_path / "out" / "pca.json").read_text())
    assert saved["n_galaxies"] == 90 and saved["n_components"] == 3 and saved["n_features"] == 8
    assert saved["explained_variance_ratio"] == sorted(
        saved["explained_variance_ratio"], reverse=True
    )


def test_prediction_files_without_representations_say_how_to_get_them(tmp_path: Path):
    with h5py.File(tmp_path / "test.h5", "w") as f:
        f.create_dataset("id_str", data=np.array(["a"], dtype=object), dtype=STRING)
    with pytest.raises(ValueError, match="holds no representations"):
        write_representations({"test": tmp_path / "test.h5"}, tmp_path / "out")


def test_nearest_neighbours_match_brute_force_cosine_search(tmp_path: Path):
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(57, 5))
    ids = np.array([f"g{i:02d}" for i in range(57)])
    for name, rows in (("test", slice(0, 20)), ("pool", slice(20, 57))):
        frame = pd.DataFrame(vectors[rows], columns=[f"pca_{i:02d}" for i in range(5)])
        frame.insert(0, "id_str", ids[rows])
        frame.to_parquet(tmp_path / f"{name}_pca.parquet")
    tables = [tmp_path / "test_pca.parquet", tmp_path / "pool_pca.parquet"]
    queries = ["g33", "g03"]
    found = nearest_neighbours(tables, queries, k=4, block=7)

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for query in queries:
        q = int(query[1:])
        similarity = unit @ unit[q]
        similarity[q] = -np.inf
        best = np.argsort(-similarity)[:4]
        rows = found[found["query_id"] == query]
        assert rows["id_str"].tolist() == ids[best].tolist()
        assert rows["rank"].tolist() == [1, 2, 3, 4]
        np.testing.assert_allclose(rows["similarity"], similarity[best], rtol=1e-9)
    with pytest.raises(ValueError, match=r"similar.ids \['nobody'\] are not galaxies"):
        nearest_neighbours(tables, ["g01", "nobody"], k=3)
    with pytest.raises(ValueError, match="similar.k = 57, but the catalogue has 57 galaxies"):
        nearest_neighbours(tables, ["g01"], k=57)
    assert len(nearest_neighbours(tables, ["g01"], k=56)) == 56
