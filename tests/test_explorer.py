"""The explorer: a static site of every galaxy's posteriors, neighbours and acquisitions."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from zooflow.explorer import REPRESENTATIONS_OFF, Round, read_explorer_data, write_explorer
from zooflow.posteriors import STRING, summarise_predictions
from zooflow.representations import nearest_neighbours
from zooflow.schema import load_schema

SCHEMA = load_schema("decals_dr5")
SPLITS = ("test", "val", "initial", "pool")


def blob_images(n: int, size: int, rng) -> np.ndarray:
    """Smooth galaxy-like blobs (noise would not compress like real thumbnails)."""
    y, x = np.mgrid[:size, :size] - size / 2
    widths = rng.uniform(1.5, size / 4, size=n)
    colour = rng.uniform(0.5, 1.0, size=(n, 3))
    profile = np.exp(-(x**2 + y**2)[None] / (2 * widths[:, None, None] ** 2))
    return (255 * profile[..., None] * colour[:, None, None, :]).astype(np.uint8)


def synthetic_run(root: Path, n: int = 40, *, seed: int = 0, rounds: int = 0) -> dict:
    """A run's files for ``n`` galaxies: posteriors per split, images, catalogue, PCA tables
    and ``rounds`` active-learning rounds of two strategies on the pool."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"J{i:05d}" for i in range(n)])
    split = np.array(SPLITS)[np.arange(n) % len(SPLITS)]
    votes = rng.integers(0, 12, size=(n, SCHEMA.n_answers))
    votes[split == "pool"] = 0  # waiting galaxies have no votes yet
    concentrations = rng.gamma(2.0, 2.0, size=(n, SCHEMA.n_answers, 5)) + 0.1
    catalogue = pd.DataFrame(votes, columns=SCHEMA.label_cols)
    catalogue.insert(0, "id_str", ids)
    catalogue["labelled"] = votes.sum(axis=1) > 0
    catalogue.to_parquet(root / "catalogue.parquet", index=False)
    posteriors, pca = {}, {}
    for name in SPLITS:
        rows = split == name
        posteriors[name] = root / f"{name}_posteriors.parquet"
        summarise_predictions(
            ids[rows], concentrations[rows], SCHEMA, votes=votes[rows], draws_per_pass=4
        ).to_parquet(posteriors[name], index=False)
        pca[name] = root / f"{name}_pca.parquet"
        table = pd.DataFrame(rng.normal(size=(rows.sum(), 6)).astype(np.float32))
        table.columns = [f"pca_{i:02d}" for i in range(6)]
        table.insert(0, "id_str", ids[rows])
        table.to_parquet(pca[name], index=False)
    with h5py.File(root / "images.h5", "w") as f:
        order = rng.permutation(n)  # images.h5 keeps catalogue order, not the site's
        f.create_dataset("images", data=blob_images(n, 32, rng)[order])
        f.create_dataset("id_str", data=ids[order].astype(object), dtype=STRING)
    waiting = ids[split == "pool"]
    al = []
    for strategy in ("epig", "random"):
        for r in range(rounds):
            folder = root / "al" / strategy / "seed_42" / f"round_{r}"
            folder.mkdir(parents=True)
            scores = pd.DataFrame({"id_str": waiting, "score": rng.uniform(size=len(waiting))})
            if strategy == "epig":
                scores["mi"] = rng.uniform(size=len(waiting))
            scores.to_csv(folder / "scores.csv", index=False)
            acquired = scores.sort_values("score", ascending=False).head(3).reset_index(drop=True)
            acquired.insert(0, "rank", range(1, len(acquired) + 1))
            acquired.to_csv(folder / "acquired.csv", index=False)
            al.append(Round(strategy, 42, r, folder / "acquired.csv", folder / "scores.csv"))
    return {
        "posteriors": posteriors,
        "images": root / "images.h5",
        "catalogue": root / "catalogue.parquet",
        "pca": pca,
        "rounds": al,
        "ids": ids,
        "votes": votes,
    }


def build(run: dict, out: Path, *, neighbours: bool = True, k: int = 5, **kwargs) -> dict:
    write_explorer(
        run["posteriors"],
        run["images"],
        run["catalogue"],
        SCHEMA,
        out,
        representations=run["pca"] if neighbours else None,
        rounds=run["rounds"],
        neighbours=k,
        **kwargs,
    )
    return read_explorer_data(out)


def site_size(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def test_every_galaxy_is_in_the_site_with_its_posteriors_as_given(tmp_path: Path):
    run = synthetic_run(tmp_path / "run", rounds=2)
    data = build(run, tmp_path / "site")

    assert sorted(data["ids"]) == sorted(run["ids"])
    assert data["splits"] == list(SPLITS)
    assert data["answers"] == SCHEMA.label_cols
    for name, path in run["posteriors"].items():
        table = pd.read_parquet(path)
        for _, row in table.iterrows():
            i = data["ids"].index(row["id_str"])
            assert data["splits"][data["split"][i]] == name
            for a, column in enumerate(SCHEMA.label_cols):
                for key, suffix in (
                    ("fraction", "fraction"),
                    ("lo", "probability_lo"),
                    ("hi", "probability_hi"),
                ):
                    assert data[key][i][a] == pytest.approx(
                        1000 * row[f"{column}_{suffix}"], abs=0.5
                    )
    questions = [q["name"] for q in data["questions"]]
    assert questions == SCHEMA.question_names
    assert all(len(row) == len(questions) for row in data["p_asked"])


def test_observed_fractions_only_where_a_galaxy_has_votes(tmp_path: Path):
    run = synthetic_run(tmp_path / "run")
    data = build(run, tmp_path / "site")
    fractions = SCHEMA.vote_fractions(run["votes"])
    for i, galaxy in enumerate(data["ids"]):
        row = list(run["ids"]).index(galaxy)
        if run["votes"][row].sum() == 0:
            assert data["observed"][i] is None and data["volunteers"][i] is None
            continue
        expected = [None if np.isnan(f) else round(1000 * f) for f in fractions[row]]
        assert data["observed"][i] == expected
        assert (
            data["volunteers"][i] == SCHEMA.question_totals(run["votes"][row : row + 1])[0].tolist()
        )


def test_neighbours_are_the_representation_search_s(tmp_path: Path):
    run = synthetic_run(tmp_path / "run")
    data = build(run, tmp_path / "site", k=4)
    expected = nearest_neighbours(run["pca"].values(), data["ids"], k=4)
    for i, galaxy in enumerate(data["ids"]):
        mine = expected[expected["query_id"] == galaxy]
        assert [data["ids"][j] for j, _ in data["neighbours"][i]] == mine["id_str"].tolist()
        np.testing.assert_allclose(
            [s for _, s in data["neighbours"][i]], mine["similarity"], atol=1e-4
        )
        assert galaxy not in [data["ids"][j] for j, _ in data["neighbours"][i]]


def test_without_representations_the_page_says_how_to_turn_them_on(tmp_path: Path):
    data = build(synthetic_run(tmp_path / "run"), tmp_path / "site", neighbours=False)
    assert data["neighbours"] is None
    assert data["neighbours_note"] == REPRESENTATIONS_OFF
    assert "representations.enabled" in REPRESENTATIONS_OFF


def test_each_round_lists_its_acquisitions_best_first_with_every_score(tmp_path: Path):
    run = synthetic_run(tmp_path / "run", rounds=2)
    data = build(run, tmp_path / "site")
    assert [(r["strategy"], r["round"]) for r in data["rounds"]] == [
        ("epig", 0),
        ("epig", 1),
        ("random", 0),
        ("random", 1),
    ]
    for summary, given in zip(data["rounds"], run["rounds"], strict=True):
        scores = pd.read_csv(given.scores, dtype={"id_str": str})
        acquired = pd.read_csv(given.acquired, dtype={"id_str": str})
        assert [data["ids"][g] for g in summary["acquired"]] == acquired["id_str"].tolist()
        ranked = scores.sort_values("score", ascending=False)
        assert [data["ids"][g] for g in summary["scored"]] == ranked["id_str"].tolist()
        np.testing.assert_allclose(summary["score"], ranked["score"], rtol=1e-3)
        assert (summary["acquired_mi"] is None) == ("mi" not in acquired.columns)
    assert set(data["strategies"]) == {"epig", "random"}


def test_the_default_survey_s_site_stays_a_few_megabytes(tmp_path: Path):
    run = synthetic_run(tmp_path / "run", n=1500, rounds=5)
    build(run, tmp_path / "site", k=8)
    size = site_size(tmp_path / "site")
    assert size < 4e6, f"{size / 1e6:.1f} MB"
    assert sorted(p.name for p in (tmp_path / "site" / "thumbnails").iterdir()) == [
        "sheet_0.jpg",
        "sheet_1.jpg",
    ]


def test_bad_inputs_name_the_file_and_column(tmp_path: Path):
    run = synthetic_run(tmp_path / "run")
    broken = pd.read_parquet(run["posteriors"]["test"])
    broken.drop(columns=f"{SCHEMA.label_cols[3]}_probability_hi").to_parquet(
        run["posteriors"]["test"]
    )
    with pytest.raises(
        ValueError, match=rf"test_posteriors.parquet.*{SCHEMA.label_cols[3]}_probability_hi"
    ):
        build(run, tmp_path / "site")

    run = synthetic_run(tmp_path / "run2")
    pd.read_parquet(run["catalogue"]).drop(columns=SCHEMA.label_cols[0]).to_parquet(
        run["catalogue"]
    )
    with pytest.raises(ValueError, match=rf"catalogue.parquet.*{SCHEMA.label_cols[0]}"):
        build(run, tmp_path / "site")

    run = synthetic_run(tmp_path / "run3")
    with h5py.File(run["images"], "a") as f:
        del f["images"]
    with pytest.raises(ValueError, match=r"images.h5: no 'images'"):
        build(run, tmp_path / "site")

    run = synthetic_run(tmp_path / "run4", rounds=1)
    scores = pd.read_csv(run["rounds"][0].scores).rename(columns={"score": "value"})
    scores.to_csv(run["rounds"][0].scores, index=False)
    with pytest.raises(ValueError, match=r"round_0/scores.csv.*'score'"):
        build(run, tmp_path / "site")
