"""Hash-based splits of zooflow.splits: deterministic, stable as the catalogue grows."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd
import pytest

from zooflow.catalogue import iter_catalogue_columns
from zooflow.splits import SPLITS, assign_splits, hash_uniform, write_splits

FRACTIONS = {"test_fraction": 0.2, "val_fraction": 0.1, "initial_fraction": 0.15}


def ids(n: int, prefix: str = "J") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(n)]


def test_hash_uniform_follows_the_documented_formula():
    for galaxy in ("J0000001", "587722981741363294", "ümlaut"):
        top_bits = int.from_bytes(hashlib.sha256(f"7:{galaxy}".encode()).digest()[:8], "big") >> 11
        assert hash_uniform([galaxy], seed=7)[0] == top_bits / 2**53


def test_split_thresholds_on_u():
    galaxies = ids(400)
    u = hash_uniform(galaxies, seed=1)
    splits = assign_splits(galaxies, np.ones(400, bool), seed=1, **FRACTIONS)
    expected = np.where(
        u < 0.2, "test", np.where(u < 0.3, "val", np.where(u < 0.45, "initial", "pool"))
    )
    np.testing.assert_array_equal(splits, expected)


def test_assignment_is_deterministic():
    galaxies = ids(500)
    first = assign_splits(galaxies, np.ones(500, bool), seed=3, **FRACTIONS)
    second = assign_splits(list(galaxies), [True] * 500, seed=3, **FRACTIONS)
    np.testing.assert_array_equal(first, second)
    assert set(first) <= set(SPLITS)


def test_fractions_are_respected_on_5000_ids():
    n = 5000
    splits = assign_splits(ids(n), np.ones(n, bool), seed=11, **FRACTIONS)
    expected = {"test": 0.2, "val": 0.1, "initial": 0.15, "pool": 0.55}
    for name, fraction in expected.items():
        count = int(np.sum(splits == name))
        sigma = np.sqrt(n * fraction * (1 - fraction))
        assert abs(count - n * fraction) < 4 * sigma, (name, count)


def test_a_galaxy_never_leaves_its_split_when_the_catalogue_grows():
    small = ids(1000)
    grown = ids(3000)
    rng = np.random.default_rng(0)
    order = rng.permutation(3000)  # the grown catalogue also arrives in another order
    grown_shuffled = [grown[i] for i in order]
    labelled_small = rng.uniform(size=1000) > 0.1
    labelled_grown = np.ones(3000, bool)
    labelled_grown[:1000] = labelled_small
    before = assign_splits(small, labelled_small, seed=5, **FRACTIONS)
    after = assign_splits(grown_shuffled, labelled_grown[order], seed=5, **FRACTIONS)
    after_by_id = dict(zip(grown_shuffled, after, strict=True))
    np.testing.assert_array_equal(before, [after_by_id[g] for g in small])
    # ...and the newcomers are spread over every split too
    newcomers = [after_by_id[g] for g in grown[1000:]]
    assert set(newcomers) == set(SPLITS)


def test_unlabelled_galaxies_always_go_to_the_pool():
    n = 2000
    labelled = np.arange(n) % 3 != 0
    splits = assign_splits(ids(n), labelled, seed=2, **FRACTIONS)
    assert np.all(splits[~labelled] == "pool")
    everyone = assign_splits(ids(n), np.ones(n, bool), seed=2, **FRACTIONS)
    np.testing.assert_array_equal(splits[labelled], everyone[labelled])
    assert np.sum(everyone[~labelled] != "pool") > 0.3 * np.sum(~labelled)


def test_changing_the_seed_changes_the_assignment():
    n = 2000
    a = assign_splits(ids(n), np.ones(n, bool), seed=0, **FRACTIONS)
    b = assign_splits(ids(n), np.ones(n, bool), seed=1, **FRACTIONS)
    # Independent assignments agree with probability sum(f^2) = 0.375 for these fractions.
    agreement = np.mean(a == b)
    assert 0.3 < agreement < 0.45


def test_zero_fractions_leave_splits_empty():
    splits = assign_splits(
        ids(300),
        np.ones(300, bool),
        seed=0,
        test_fraction=0.0,
        val_fraction=0.2,
        initial_fraction=0.0,
    )
    assert set(splits) == {"val", "pool"}


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"test_fraction": -0.1}, "test_fraction must be in"),
        ({"val_fraction": 1.0}, "val_fraction must be in"),
        ({"initial_fraction": float("nan")}, "initial_fraction must be in"),
        ({"test_fraction": "0.2"}, "test_fraction must be a number"),
        ({"test_fraction": 0.5, "val_fraction": 0.3, "initial_fraction": 0.2}, "below 1"),
    ],
)
def test_bad_fractions_are_rejected(fractions, message):
    with pytest.raises(ValueError, match=message):
        assign_splits(ids(10), np.ones(10, bool), seed=0, **(FRACTIONS | fractions))


def test_labelled_must_match_and_be_boolean():
    with pytest.raises(ValueError, match="labelled has shape"):
        assign_splits(ids(10), np.ones(9, bool), seed=0, **FRACTIONS)
    with pytest.raises(ValueError, match="booleans"):
        assign_splits(ids(3), [1, 0, 1], seed=0, **FRACTIONS)


def write_catalogue(path, galaxies, labelled):
    pd.DataFrame({"id_str": galaxies, "file_loc": "x.png", "labelled": labelled}).to_parquet(path)
    return path


def test_write_splits_writes_csv_in_catalogue_order_and_logs_counts(tmp_path, caplog):
    galaxies = ids(600)[::-1]
    labelled = np.arange(600) % 5 != 0
    catalogue = write_catalogue(tmp_path / "catalogue.parquet", galaxies, labelled)
    out = tmp_path / "data" / "splits.csv"
    with caplog.at_level(logging.INFO, logger="zooflow.splits"):
        returned = write_splits(catalogue, out, seed=9, **FRACTIONS)
    on_disk = pd.read_csv(out, dtype=str)
    assert list(on_disk.columns) == ["id_str", "split"]
    assert on_disk["id_str"].tolist() == galaxies
    expected = assign_splits(galaxies, labelled, seed=9, **FRACTIONS)
    np.testing.assert_array_equal(on_disk["split"], expected)
    counts = pd.Series(expected).value_counts()
    assert returned.to_dict() == {name: counts.get(name, 0) for name in SPLITS}
    assert f"test {counts['test']}, val {counts['val']}" in caplog.text
    assert "120 unlabelled" in caplog.text
    assert sorted(p.name for p in out.parent.iterdir()) == ["splits.csv"]


def test_write_splits_in_blocks_equals_one_pass_and_finds_duplicates_across_blocks(tmp_path):
    galaxies = ids(50)
    labelled = np.arange(50) % 3 != 0
    catalogue = write_catalogue(tmp_path / "c.parquet", galaxies, labelled)
    write_splits(catalogue, tmp_path / "one.csv", seed=4, **FRACTIONS)
    blocks = list(iter_catalogue_columns(catalogue, ["id_str", "labelled"], chunk_rows=7))
    assert [len(b) for b in blocks] == [7] * 7 + [1]
    expected = pd.read_csv(tmp_path / "one.csv", dtype=str)
    np.testing.assert_array_equal(
        expected["split"], assign_splits(galaxies, labelled, seed=4, **FRACTIONS)
    )
    repeated = write_catalogue(tmp_path / "r.parquet", [*galaxies, "x", galaxies[3]], [True] * 52)
    with pytest.raises(ValueError, match=rf"rows \[3, 51\] share '{galaxies[3]}'"):
        list(iter_catalogue_columns(repeated, ["id_str"], chunk_rows=7))
    empty_cell = tmp_path / "e.parquet"
    pd.DataFrame({"id_str": [*galaxies[:20], None], "labelled": True}).to_parquet(empty_cell)
    with pytest.raises(ValueError, match="row 20 has no id_str"):
        list(iter_catalogue_columns(empty_cell, ["id_str", "labelled"], chunk_rows=7))


def test_write_splits_keeps_leading_zeros_in_ids(tmp_path):
    catalogue = write_catalogue(tmp_path / "c.parquet", ["007", "0100", "12"], [True] * 3)
    write_splits(catalogue, tmp_path / "s.csv", seed=0, **FRACTIONS)
    assert pd.read_csv(tmp_path / "s.csv", dtype=str)["id_str"].tolist() == ["007", "0100", "12"]


def test_write_splits_rejects_bad_catalogues(tmp_path):
    no_labelled = tmp_path / "a.parquet"
    pd.DataFrame({"id_str": ["a", "b"]}).to_parquet(no_labelled)
    with pytest.raises(ValueError, match="'labelled'"):
        write_splits(no_labelled, tmp_path / "s.csv", seed=0, **FRACTIONS)
    duplicated = write_catalogue(tmp_path / "b.parquet", ["a", "b", "a"], [True] * 3)
    with pytest.raises(ValueError, match=r"rows \[0, 2\] share 'a'"):
        write_splits(duplicated, tmp_path / "s.csv", seed=0, **FRACTIONS)
    not_bool = write_catalogue(tmp_path / "c.parquet", ["a", "b"], ["yes", "no"])
    with pytest.raises(ValueError, match="must be boolean"):
        write_splits(not_bool, tmp_path / "s.csv", seed=0, **FRACTIONS)
    assert not (tmp_path / "s.csv").exists()
