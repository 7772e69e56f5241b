"""Data-release tables: GZ DECaLS' columns and definitions, checked by an independent route."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from zooflow.ids import read_csv_with_ids
from zooflow.posteriors import STRING
from zooflow.release import release_tables, write_release_tables
from zooflow.schema import load_schema


@pytest.fixture(scope="module")
def schema():
    return load_schema("decals_dr5", "-dr5")


def beta_quantile_by_bisection(a: float, b: float, q: float) -> float:
    """The q quantile of Beta(a, b), found by root-finding on the regularised incomplete beta."""
    return optimize.brentq(lambda x: special.betainc(a, b, x) - q, 0.0, 1.0, xtol=1e-13)


def concentrations_for(schema, n_galaxies: int, passes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Galaxies from clearly smooth to clearly featured, so some questions fall below half asked.
    alpha = rng.gamma(2.0, 3.0, (n_galaxies, schema.n_answers, passes)) + 0.5
    root = schema.label_cols.index("smooth-or-featured-dr5_smooth")
    alpha[: n_galaxies // 2, root] *= 20
    return alpha.astype(np.float32)


def test_columns_and_definitions_match_gz_decals_release(schema):
    alpha = concentrations_for(schema, 6, 5, seed=3)
    ids = np.array([f"J{i:03d}" for i in range(6)])
    friendly, advanced = release_tables(ids, alpha, schema)

    cols = schema.label_cols
    assert list(friendly.columns) == ["id_str"] + [f"{c}_fraction" for c in cols]
    assert list(advanced.columns) == ["id_str"] + [
        f"{c}_{kind}"
        for kind in ("fraction", "90pc-lower", "90pc-upper", "proportion-asked")
        for c in cols
    ]
    assert "smooth-or-featured-dr5_smooth_90pc-lower" in advanced.columns  # suffix carried

    a = alpha.astype(np.float64)
    for g in range(len(ids)):
        for question in schema.questions:
            block = a[g, question.indices]  # (answers, passes)
            for j, col in enumerate(cols[question.indices]):
                expected_fraction = np.mean(block[j] / block.sum(axis=0))
                assert advanced.loc[g, f"{col}_fraction"] == pytest.approx(
                    expected_fraction, abs=1e-9
                )
                rest = block.sum(axis=0) - block[j]
                for kind, q in (("90pc-lower", 0.05), ("90pc-upper", 0.95)):
                    per_pass = [
                        beta_quantile_by_bisection(x, y, q)
                        for x, y in zip(block[j], rest, strict=True)
                    ]
                    assert advanced.loc[g, f"{col}_{kind}"] == pytest.approx(
                        np.median(per_pass), abs=1e-5
                    )

    # Proportion asked: product of the fractions of the answers on the way to the question.
    frac = {c: advanced[f"{c}_fraction"].to_numpy() for c in cols}
    expected_bar = frac["smooth-or-featured-dr5_featured-or-disk"] * frac["disk-edge-on-dr5_no"]
    expected_winding = expected_bar * frac["has-spiral-arms-dr5_yes"]
    for answer in ("strong", "weak", "no"):
        np.testing.assert_allclose(
            advanced[f"bar-dr5_{answer}_proportion-asked"], expected_bar, rtol=1e-12
        )
    np.testing.assert_allclose(
        advanced["spiral-winding-dr5_tight_proportion-asked"], expected_winding, rtol=1e-12
    )
    np.testing.assert_array_equal(advanced["smooth-or-featured-dr5_smooth_proportion-asked"], 1.0)

    # Friendly: the fraction where at least half of the volunteers would be asked, else NaN.
    for col in cols:
        asked = advanced[f"{col}_proportion-asked"].to_numpy()
        shown = friendly[f"{col}_fraction"].to_numpy()
        np.testing.assert_array_equal(np.isnan(shown), asked < 0.5)
        np.testing.assert_array_equal(shown[asked >= 0.5], frac[col][asked >= 0.5])
    # The smooth half loses its bar fraction, the featured half keeps its smooth fraction.
    assert friendly["bar-dr5_no_fraction"].iloc[:3].isna().all()
    assert friendly["smooth-or-featured-dr5_smooth_fraction"].notna().all()


def write_predictions(path: Path, ids, alpha, schema, head="dirichlet") -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("predictions", data=alpha)
        f.create_dataset("id_str", data=np.array(ids, dtype=object), dtype=STRING)
        f.create_dataset("votes", data=np.zeros(alpha.shape[:2], dtype=np.int64))
        f.create_dataset("label_cols", data=np.array(schema.label_cols, dtype=object), dtype=STRING)
        f.attrs["head"] = head


def test_written_tables_stream_in_chunks_and_keep_ids(tmp_path: Path, schema):
    alpha = concentrations_for(schema, 23, 4, seed=5)
    ids = ["587722981741363294", "NA", "000123"] + [f"gal {i}" for i in range(20)]
    write_predictions(tmp_path / "test_predictions.h5", ids, alpha, schema)
    out = {
        name: tmp_path / f"test_{name}"
        for name in ("friendly.parquet", "advanced.parquet", "friendly.csv")
    }
    count = write_release_tables(
        tmp_path / "test_predictions.h5",
        out["friendly.parquet"],
        out["advanced.parquet"],
        out["friendly.csv"],
        schema,
        chunk=5,
    )
    assert count == 23
    friendly_whole, advanced_whole = release_tables(np.array(ids), alpha, schema)
    pd.testing.assert_frame_equal(pd.read_parquet(out["advanced.parquet"]), advanced_whole)
    pd.testing.assert_frame_equal(pd.read_parquet(out["friendly.parquet"]), friendly_whole)
    from_csv = read_csv_with_ids(out["friendly.csv"])
    assert from_csv["id_str"].tolist() == ids
    pd.testing.assert_frame_equal(from_csv, friendly_whole, check_exact=False, rtol=1e-12)
    assert not list(tmp_path.glob(".partial*"))


def test_a_catalogues_splits_make_one_table_and_empty_splits_are_fine(tmp_path: Path, schema):
    alpha = concentrations_for(schema, 9, 3, seed=8)
    ids = [f"g{i}" for i in range(9)]
    write_predictions(tmp_path / "test.h5", [], alpha[:0], schema)  # an empty split
    write_predictions(tmp_path / "val.h5", ids[:4], alpha[:4], schema)
    write_predictions(tmp_path / "pool.h5", ids[4:], alpha[4:], schema)
    outs = [tmp_path / n for n in ("f.parquet", "a.parquet", "f.csv")]
    files = [tmp_path / f"{split}.h5" for split in ("test", "val", "pool")]
    assert write_release_tables(files, *outs, schema, chunk=3) == 9
    friendly, advanced = release_tables(np.array(ids), alpha, schema)
    pd.testing.assert_frame_equal(pd.read_parquet(outs[1]), advanced)
    assert read_csv_with_ids(outs[2])["id_str"].tolist() == ids

    assert write_release_tables(files[:1], *outs, schema) == 0
    assert pd.read_parquet(outs[0]).columns.tolist() == friendly.columns.tolist()
    assert pd.read_parquet(outs[0]).empty and read_csv_with_ids(outs[2]).empty


def test_binomial_predictions_and_another_tree_are_refused(tmp_path: Path, schema):
    alpha = concentrations_for(schema, 2, 3, seed=1)
    write_predictions(tmp_path / "binomial.h5", ["a", "b"], alpha, schema, head="binomial")
    outs = [tmp_path / n for n in ("f.parquet", "a.parquet", "f.csv")]
    with pytest.raises(ValueError, match="binomial.h5: release tables need Dirichlet"):
        write_release_tables(tmp_path / "binomial.h5", *outs, schema)
    write_predictions(tmp_path / "plain.h5", ["a", "b"], alpha, schema)
    with pytest.raises(ValueError, match="plain.h5: its answers .* are not those of tree"):
        write_release_tables(tmp_path / "plain.h5", *outs, load_schema("decals_dr5"))
    assert not any(p.exists() for p in outs)
