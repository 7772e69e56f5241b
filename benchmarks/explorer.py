"""Time the explorer's page load in headless chromium, for a site of the default survey's size.

    .venv/bin/python benchmarks/explorer.py                 # 1,500 galaxies, as config/config.yaml
    .venv/bin/python benchmarks/explorer.py --galaxies 10000 --keep /tmp/site

Goal: the grid is rendered within 2 s of navigation start (``performance.mark("grid-rendered")``
in the page), opened from file://, and the site stays a few MB. The site is built by the library
(:func:`zooflow.explorer.write_explorer`) from synthetic inputs laid out as a run writes them:
posteriors of T = 30 Dirichlet samples per galaxy (decals_dr5, 34 answers), votes for every
galaxy (the mock catalogue has them all), 40 principal components and 8 neighbours per galaxy,
and the default study's acquisitions (2 strategies, 3 seeds, 5 acquiring rounds of 60). Images
are ellipses on a noisy sky (benchmarks/_survey.py): noise compresses worse than real galaxies,
so the size is if anything high.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from _survey import synthetic_images

from zooflow.explorer import Round, write_explorer
from zooflow.posteriors import STRING, summarise_predictions
from zooflow.schema import load_schema

GOAL_SECONDS = 2.0
SPLIT_FRACTIONS = {"test": 0.2, "val": 0.1, "initial": 0.07, "pool": 0.63}


def synthetic_inputs(root: Path, n: int, seed: int) -> dict:
    schema = load_schema("decals_dr5")
    rng = np.random.default_rng(seed)
    ids = np.array([f"{1237648720000000000 + i}" for i in range(n)])  # 19-digit, like SDSS ids
    split = rng.choice(list(SPLIT_FRACTIONS), size=n, p=list(SPLIT_FRACTIONS.values()))
    votes = rng.poisson(4.0, size=(n, schema.n_answers))
    catalogue = pd.DataFrame(votes, columns=schema.label_cols)
    catalogue.insert(0, "id_str", ids)
    catalogue["labelled"] = True
    catalogue.to_parquet(root / "catalogue.parquet", index=False)
    posteriors, pca = {}, {}
    for name in SPLIT_FRACTIONS:
        rows = split == name
        alpha = 1 + 30 * rng.beta(0.5, 2.0, size=(rows.sum(), schema.n_answers, 30))
        posteriors[name] = root / f"{name}_posteriors.parquet"
        summarise_predictions(ids[rows], alpha, schema, votes=votes[rows]).to_parquet(
            posteriors[name], index=False
        )
        table = pd.DataFrame(
            rng.normal(size=(rows.sum(), 40)).astype(np.float32),
            columns=[f"pca_{i:02d}" for i in range(40)],
        )
        table.insert(0, "id_str", ids[rows])
        pca[name] = root / f"{name}_pca.parquet"
        table.to_parquet(pca[name], index=False)
    with h5py.File(root / "images.h5", "w") as f:
        f.create_dataset("images", data=synthetic_images(rng, n, 32, 3))
        f.create_dataset("id_str", data=ids.astype(object), dtype=STRING)
    pool = ids[split == "pool"]
    rounds = []
    for strategy in ("epig", "random"):
        for study_seed in (42, 43, 44):
            waiting = pool
            for r in range(5):
                folder = root / "al" / strategy / f"seed_{study_seed}" / f"round_{r}"
                folder.mkdir(parents=True)
                scores = pd.DataFrame({"id_str": waiting, "score": rng.uniform(size=len(waiting))})
                if strategy == "epig":
                    scores["mi"] = rng.uniform(size=len(waiting))
                acquired = scores.sort_values("score", ascending=False).head(60)
                acquired.insert(0, "rank", range(1, len(acquired) + 1))
                scores.to_csv(folder / "scores.csv", index=False)
                acquired.to_csv(folder / "acquired.csv", index=False)
                rounds.append(
                    Round(strategy, study_seed, r, folder / "acquired.csv", folder / "scores.csv")
                )
                waiting = np.setdiff1d(waiting, acquired["id_str"])
    return {
        "schema": schema,
        "posteriors": posteriors,
        "pca": pca,
        "rounds": rounds,
        "images": root / "images.h5",
        "catalogue": root / "catalogue.parquet",
    }


def load_times(index: Path, chromium: str, loads: int) -> list[float]:
    """Seconds from navigation start to the grid rendered, per fresh page load."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(loads):
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(index.as_uri())
            page.wait_for_selector("body[data-grid-rendered]", timeout=60_000)
            if errors:
                raise RuntimeError(f"the page failed: {errors}")
            times.append(
                page.evaluate("performance.getEntriesByName('grid-rendered')[0].startTime") / 1000
            )
            page.context.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--galaxies", type=int, default=1500)
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the site here and keep it")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        inputs = synthetic_inputs(scratch, args.galaxies, args.seed)
        site = args.keep or scratch / "site"
        start = time.perf_counter()
        index = write_explorer(
            inputs["posteriors"],
            inputs["images"],
            inputs["catalogue"],
            inputs["schema"],
            site,
            representations=inputs["pca"],
            rounds=inputs["rounds"],
            neighbours=8,
        )
        built = time.perf_counter() - start
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
        times = load_times(index, chromium, args.loads)
    median = statistics.median(times)
    print(f"explorer of {args.galaxies} galaxies ({len(inputs['rounds'])} rounds, 8 neighbours)")
    print(f"  built in {built:.1f} s; site {size:.2f} MB (data.js, index.html, thumbnails)")
    print(
        f"  page load, navigation start to grid rendered: median {median:.3f} s over "
        f"{args.loads} loads (first {times[0]:.3f} s, slowest {max(times):.3f} s); "
        f"goal {GOAL_SECONDS:.0f} s: {median / GOAL_SECONDS:.2f}x of it"
    )


if __name__ == "__main__":
    main()
