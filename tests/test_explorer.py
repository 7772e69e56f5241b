"""The explorer: a static site of every galaxy's posteriors, neighbours and acquisitions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import TINY_CONFIG, copy_workflow, run_snakemake
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


def test_a_run_larger_than_max_galaxies_shows_a_seeded_sample_with_every_acquisition(
    tmp_path: Path,
):
    run = synthetic_run(tmp_path / "run", n=120, rounds=2)
    data = build(run, tmp_path / "site", k=4, max_galaxies=30)
    assert len(data["ids"]) == 30 and data["run_galaxies"] == 120
    acquired = set()
    for given in run["rounds"]:
        acquired |= set(pd.read_csv(given.acquired, dtype={"id_str": str})["id_str"])
    assert acquired <= set(data["ids"])
    # The same galaxies every time, in the run's order, thumbnails and neighbours among them.
    assert build(run, tmp_path / "again", k=4, max_galaxies=30)["ids"] == data["ids"]
    order = [list(run["ids"]).index(g) for g in data["ids"]]
    on_site = pd.concat([pd.read_parquet(p) for p in run["posteriors"].values()])["id_str"]
    assert order == sorted(order, key=lambda row: list(on_site).index(run["ids"][row]))
    assert all(0 <= j < 30 for near in data["neighbours"] for j, _ in near)
    _write_shown(run, data["ids"], tmp_path / "shown.parquet")
    expected = nearest_neighbours([tmp_path / "shown.parquet"], data["ids"][:3], k=4)
    for i in range(3):
        mine = expected[expected["query_id"] == data["ids"][i]]
        assert [data["ids"][j] for j, _ in data["neighbours"][i]] == mine["id_str"].tolist()
    # Round ranks are among the galaxies shown.
    for summary in data["rounds"]:
        assert set(summary["acquired"]) <= set(summary["scored"])
        assert len(summary["scored"]) < 30
    message = f"acquired {len(acquired)} galaxies, more than explorer.max_galaxies"
    with pytest.raises(ValueError, match=message):
        build(run, tmp_path / "tiny", max_galaxies=5)


def _write_shown(run: dict, ids: list[str], path: Path) -> None:
    """The PCA rows of the galaxies on the site, as one table (their search space)."""
    table = pd.concat([pd.read_parquet(p) for p in run["pca"].values()])
    table.set_index("id_str").loc[ids].reset_index().to_parquet(path, index=False)


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


# --- in a real browser ---------------------------------------------------------------------------


def chromium_or_skip() -> str:
    """The system's chromium (Debian's package; nothing is downloaded at test time). Missing,
    the browser tests skip, except in CI (.ci/run sets ZOOFLOW_CI and installs chromium), where
    they fail: a green CI run means the explorer ran in a browser."""
    path = os.environ.get("ZOOFLOW_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if path:
        return path
    reason = "chromium is not installed (apt-get install chromium): the explorer's browser test"
    if os.environ.get("ZOOFLOW_CI"):
        pytest.fail(f"{reason} must run in CI (ZOOFLOW_CI is set)")
    pytest.skip(f"{reason} is skipped")


def keep_artefact(path: Path, tmp_path_factory, capsys) -> Path:
    """Copy a test artefact (a screenshot) where a person can find it, and say where: the
    folder ZOOFLOW_ARTEFACTS names (.ci/run sets it), else pytest's temporary folder."""
    base = tmp_path_factory.getbasetemp() / "artefacts"
    kept = Path(os.environ.get("ZOOFLOW_ARTEFACTS") or base) / path.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, kept)
    with capsys.disabled():
        print(f"\n  explorer screenshot: {kept}")
    return kept


def browse(site: Path, screenshot: Path) -> dict:
    """Open the site from file:// in headless chromium and use it as a person would: filter,
    open a galaxy, follow a neighbour. Returns what it saw; fails on any console or page error."""
    from playwright.sync_api import sync_playwright

    data = read_explorer_data(site)
    answer = data["answers"].index("smooth-or-featured_smooth")
    fractions = sorted(row[answer] for row in data["fraction"])
    threshold = fractions[len(fractions) // 2]  # about half the galaxies pass
    errors: list[str] = []
    seen: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_or_skip(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}"))
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-grid-rendered]")

        def cells() -> list[str]:
            return page.eval_on_selector_all("#grid a.cell", "els => els.map(e => e.dataset.id)")

        seen["all"] = cells()
        sheets = page.evaluate(
            """files => Promise.all(files.map(f => { const i = new Image(); i.src = f;
               return i.decode().then(() => i.naturalWidth); }))""",
            data["thumbnails"]["files"],
        )
        assert all(width > 0 for width in sheets)

        page.select_option("#answer", str(answer))
        page.fill("#min", f"{threshold / 1000:.3f}")
        expected = {
            g
            for g, row in zip(data["ids"], data["fraction"], strict=True)
            if row[answer] >= threshold
        }
        seen["filtered"] = cells()
        assert int(page.get_attribute("#count", "data-matching")) == len(expected)
        assert page.is_hidden("#more") == (len(expected) <= 240)
        assert set(seen["filtered"]) <= expected and len(seen["filtered"]) == min(
            len(expected), 240
        )
        shown = [data["fraction"][data["ids"].index(g)][answer] for g in seen["filtered"]]
        assert shown == sorted(shown, reverse=True)  # high first
        page.select_option("#split", str(data["splits"].index("test")))
        seen["test"] = cells()
        assert seen["test"] and all(
            data["splits"][data["split"][data["ids"].index(g)]] == "test" for g in seen["test"]
        )
        page.screenshot(path=str(screenshot))

        first = seen["test"][0]
        page.click(f'#grid a.cell[data-id="{first}"]')
        page.wait_for_selector("#galaxy-view:not([hidden])")
        assert page.get_attribute("#galaxy-view", "data-galaxy") == first
        rows = page.eval_on_selector_all("table.posteriors tr[data-answer]", "els => els.length")
        assert rows == len(data["answers"])
        if data["neighbours"] is not None:
            i = data["ids"].index(first)
            neighbour = data["ids"][data["neighbours"][i][0][0]]
            page.click("#neighbours a.neighbour >> nth=0")
            page.wait_for_function(
                f"document.getElementById('galaxy-view').dataset.galaxy === {neighbour!r}"
            )
            seen["neighbour"] = (first, neighbour)
            assert page.evaluate("decodeURIComponent(location.hash)") == f"#galaxy={neighbour}"
        else:
            assert "representations.enabled" in page.inner_text("#neighbours")
        if data["rounds"]:
            page.click("#rounds-link")
            page.click("#rounds-view details >> nth=0")
            page.wait_for_selector("#rounds-view .acquired a.cell")
            acquired = page.eval_on_selector_all(
                "#rounds-view .acquired a.cell", "els => els.length"
            )
            seen["acquired"] = acquired
            assert acquired == len(data["rounds"][0]["acquired"])
        browser.close()
    assert not errors, errors
    return seen


def test_the_site_works_in_a_browser(tmp_path: Path, tmp_path_factory, capsys):
    chromium_or_skip()
    build(synthetic_run(tmp_path / "run", n=300, rounds=2), tmp_path / "site")
    seen = browse(tmp_path / "site", tmp_path / "explorer_synthetic.png")
    assert len(seen["filtered"]) < len(seen["all"]) and "neighbour" in seen
    keep_artefact(tmp_path / "explorer_synthetic.png", tmp_path_factory, capsys)


@pytest.mark.slow
def test_a_real_run_s_explorer_in_a_browser(
    tiny_full_run: Path, tmp_path: Path, tmp_path_factory, capsys
):
    """The workflow's own site, from a tiny run with representations and rounds: only the
    prediction pass (now with features) and what follows rerun, no training."""
    chromium_or_skip()
    workdir = copy_workflow(tmp_path / "run")
    shutil.copytree(tiny_full_run / "results", workdir / "results")
    config = [
        # The copy has none of Snakemake's records of the parameters its files were made with
        # (which name the fixture's own folder), so say that the prediction pass must rerun,
        # now with features.
        "--forcerun",
        "results/full/predictions/group_0",
        "--configfile",
        str(TINY_CONFIG),
        "--config",
        "representations={enabled: true}",
        "explorer={active_learning: true}",
    ]
    plan = run_snakemake(workdir, "full", "-n", "--quiet", "rules", *config).stdout
    assert "explorer" in plan and "\ntrain " not in plan, plan
    run_snakemake(workdir, "full", *config)
    site = workdir / "results" / "explorer"
    data = read_explorer_data(site)
    assert data["neighbours"] is not None and len(data["rounds"]) == 2  # 2 strategies, round 0
    seen = browse(site, tmp_path / "explorer.png")
    assert "neighbour" in seen and seen["acquired"] == 8
    keep_artefact(tmp_path / "explorer.png", tmp_path_factory, capsys)
