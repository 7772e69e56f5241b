"""The whole workflow through Snakemake on the tiny survey: products, rounds, reruns."""

import json
import os
import re
import time

import numpy as np
import pandas as pd
import pytest

from conftest import SHIPPED_CONFIG, TINY_CONFIG, planned_updates, run_snakemake

pytestmark = pytest.mark.slow

# The tiny run compares the default strategies (the first is the one the report features).
STRATEGIES = tuple(SHIPPED_CONFIG["active_learning"]["strategies"])
FIRST = STRATEGIES[0]


def _round(workdir, strategy, r):
    return workdir / "results" / "al" / strategy / "seed_42" / f"round_{r}"


def test_the_default_target_makes_every_product(tiny_full_run):
    results = tiny_full_run / "results"
    for split in ("test", "val", "initial", "pool"):
        posteriors = pd.read_parquet(results / "full" / f"{split}_posteriors.parquet")
        assert "smooth-or-featured_smooth_probability_hi" in posteriors
    summary = json.loads((results / "full" / "evaluation" / "summary.json").read_text())
    assert summary["n_galaxies"] > 0 and 0 < summary["rmse"] < 1
    for figure in ("coverage", "posteriors", "training"):
        assert (results / "full" / "figures" / f"{figure}.png").stat().st_size > 1000
    curves = pd.read_csv(results / "al" / "learning_curves.csv")
    assert sorted(set(curves["strategy"])) == sorted(STRATEGIES)
    assert sorted(curves["round"].unique()) == [0, 1]
    # Round 1 has the initial set plus one round of acquisitions (8 in the tiny config).
    assert (curves.loc[curves["round"] == 1, "n_acquired"] == 8).all()
    saved = json.loads((results / "al" / "labels_saved.json").read_text())
    assert set(saved) == set(STRATEGIES) - {"random"}
    assert "rmse" in saved[FIRST]
    by_budget = pd.read_csv(results / "al" / "labels_saved_by_budget.csv")
    assert set(by_budget["stop_round"]) == {1}
    assert set(by_budget["strategy"]) == set(STRATEGIES) - {"random"}
    assert (results / "al" / "labels_saved_by_budget.png").stat().st_size > 1000
    assert (results / "al" / FIRST / "seed_42" / "round_0" / "gallery.png").exists()


def test_round_zero_is_trained_once_and_shared_by_every_strategy(tiny_full_run):
    first, other = _round(tiny_full_run, FIRST, 0), _round(tiny_full_run, "random", 0)
    assert (other / "model.keras").read_bytes() == (first / "model.keras").read_bytes()
    logs = tiny_full_run / "logs" / "al"
    assert (logs / FIRST / "seed_42" / "round_0" / "train.log").exists()
    assert not (logs / "random" / "seed_42" / "round_0" / "train.log").exists()
    assert (logs / "random" / "seed_42" / "round_0" / "share.log").exists()
    # Round 1 trains each strategy on its own acquisitions.
    assert (logs / "random" / "seed_42" / "round_1" / "train.log").exists()


def test_a_round_trains_on_the_initial_set_plus_acquisitions_and_nothing_else(tiny_full_run):
    splits = pd.read_csv(tiny_full_run / "results" / "data" / "splits.csv")
    by_split = {s: set(splits.loc[splits["split"] == s, "id_str"]) for s in splits["split"]}
    for strategy in STRATEGIES:
        round_0, round_1 = _round(tiny_full_run, strategy, 0), _round(tiny_full_run, strategy, 1)
        labelled_0 = set(pd.read_csv(round_0 / "labelled.csv")["id_str"])
        acquired_0 = set(pd.read_csv(round_0 / "acquired.csv")["id_str"])
        labelled_1 = set(pd.read_csv(round_1 / "labelled.csv")["id_str"])
        assert labelled_0 == by_split["initial"]
        assert acquired_0 <= by_split["pool"]
        assert labelled_1 == labelled_0 | acquired_0
        # Evaluation and validation galaxies never enter a training set.
        assert not (labelled_1 & (by_split["test"] | by_split["val"]))
        # Round 0 predicted (and so could only acquire from) the galaxies waiting in the pool.
        predicted = pd.read_parquet(round_0 / "pool_posteriors.parquet")["id_str"]
        assert set(predicted) == by_split["pool"]
        config = json.loads((round_1 / "training_config.json").read_text())
        assert config["n_train"] == len(labelled_1)


def test_the_report_gathers_every_figure_and_table_under_named_categories(tiny_full_run):
    import zipfile

    run_snakemake(
        tiny_full_run, "all", "full", "--report", "report.zip", "--configfile", str(TINY_CONFIG)
    )
    with zipfile.ZipFile(tiny_full_run / "report.zip") as report:
        names = "\n".join(report.namelist())
        page = report.read("report/report.html").decode()
    for figure in (
        "coverage.png",
        "pit.png",
        "posteriors.png",
        "training.png",
        "learning_curves.png",
        "acquisition_composition.png",
        "gallery.png",
        "learning_curves.html",
        "labels_saved.html",
        "labels_saved_by_budget.html",
        "summary.html",
    ):
        assert figure in names, figure
    categories = json.loads(re.search(r"categories = (\{.*?\});?\n", page).group(1))
    assert "Other" not in categories
    for category, subcategories in categories.items():
        assert "Other" not in subcategories, f"{category}: {sorted(subcategories)}"
    # The study's final model (the last round of its first strategy) and the supervised run.
    final = f"al/{FIRST}/seed_42/round_1"
    for category in ("Posteriors", "Calibration", "Training", "Evaluation"):
        assert {final, "full"} <= set(categories[category]), category
    assert "Tables" in categories["Active learning"]


def test_nothing_is_left_to_do_after_a_full_run(tiny_full_run):
    assert planned_updates(tiny_full_run) == []


def _rules_of(paths):
    """Which stages a list of planned files belongs to, by their names."""
    return {os.path.basename(p) for p in paths}


def test_a_changed_training_setting_reruns_training_and_what_follows_only(tiny_full_run):
    planned = planned_updates(tiny_full_run, config={"train": {"learning_rate": 0.0005}})
    assert "results/full/model.keras" in planned
    assert any(p.endswith("round_1/model.keras") for p in planned)
    assert "results/al/learning_curves.csv" in planned
    assert not [p for p in planned if p.startswith("results/data/")]


def test_a_run_exports_features_that_every_training_of_another_starts_from(tiny_full_run, tmp_path):
    from zooflow.models import build_model, load_model, split_trunk_head

    run_snakemake(
        tiny_full_run, "results/full/features.weights.h5", "--configfile", str(TINY_CONFIG)
    )
    weights = tiny_full_run / "results" / "full" / "features.weights.h5"
    full = load_model(tiny_full_run / "results" / "full" / "model.keras")
    started = build_model(
        full.name,
        input_shape=full.input_shape[1:],
        head="dirichlet",
        n_answers=full.output_shape[-1],
        weights_path=weights,
        seed=1,
    )
    trained, fresh = (split_trunk_head(m)[0].get_layer("features") for m in (full, started))
    for expected, got in zip(trained.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)

    pretrained = tmp_path / "pretrained.yaml"
    pretrained.write_text(f"train: {{weights_path: {weights}}}\n")
    plan = run_snakemake(
        tiny_full_run, "-n", "all", "full", "--configfile", str(TINY_CONFIG), str(pretrained)
    )
    trainings = re.findall(r"rule train:\n\s+input: ([^\n]*)", plan.stdout)
    # Every training: full, and each round of the first strategy (the other shares round 0).
    assert len(trainings) == 1 + len(STRATEGIES) * 2 - 1
    assert all(str(weights) in inputs.split(", ") for inputs in trainings)

    # A missing file stops the plan before anything runs, naming the setting and the file.
    absent = tmp_path / "absent.yaml"
    absent.write_text("train: {weights_path: absent_trunk.weights.h5}\n")
    result = run_snakemake(
        tiny_full_run, "-n", "--configfile", str(TINY_CONFIG), str(absent), check=False
    )
    assert result.returncode != 0
    message = "train.weights_path = 'absent_trunk.weights.h5': no such file"
    assert message in result.stdout + result.stderr


def _plan_after_editing(workdir, module):
    """What Snakemake would rerun after an edit to ``module`` (its text is restored after)."""
    original = module.read_text()
    try:
        module.write_text(original + "\n# an edit\n")
        later = time.time() + 5
        os.utime(module, (later, later))
        return planned_updates(workdir)
    finally:
        module.write_text(original)


def test_editing_the_acquisition_module_reruns_only_acquisition_and_what_follows(
    tiny_full_run,
):
    module = tiny_full_run / "zooflow" / "acquisition.py"
    planned = _plan_after_editing(tiny_full_run, module)
    names = _rules_of(planned)
    assert {"acquired.csv", "scores.csv"} <= names
    assert any(p.endswith("round_1/model.keras") for p in planned)
    # Neither the data stage, nor the supervised run, nor round 0's model.
    assert not [p for p in planned if p.startswith(("results/data/", "results/full/"))]
    assert not [p for p in planned if p.endswith("round_0/model.keras")]
    # Restore a consistent state for the other tests.
    os.utime(module, (time.time() - 3600, time.time() - 3600))


def test_a_changed_mock_survey_parameter_reruns_everything(tiny_full_run):
    planned = planned_updates(tiny_full_run, config={"mock": {"n_galaxies": 80, "sky_noise": 2.0}})
    assert "results/data/mock/catalogue.csv" in planned
    assert "results/data/catalogue.parquet" in planned
    assert "results/full/model.keras" in planned
    assert "results/al/learning_curves.csv" in planned


def test_raising_the_number_of_rounds_runs_only_the_new_rounds(tiny_full_run):
    planned = planned_updates(tiny_full_run, config={"active_learning": {"rounds": 3}})
    for strategy in STRATEGIES:
        assert f"results/al/{strategy}/seed_42/round_2/model.keras" in planned
        assert f"results/al/{strategy}/seed_42/round_1/acquired.csv" in planned
        for old in (0, 1):
            assert f"results/al/{strategy}/seed_42/round_{old}/model.keras" not in planned
    assert not [p for p in planned if p.startswith(("results/data/", "results/full/"))]


def test_no_test_or_validation_galaxy_is_ever_trained_on(tiny_full_run):
    splits = pd.read_csv(tiny_full_run / "results" / "data" / "splits.csv", dtype={"id_str": str})
    held_out = set(splits.loc[splits["split"].isin(["test", "val"]), "id_str"])
    training_sets = [tiny_full_run / "results" / "full" / "labelled.csv"]
    training_sets += sorted(
        (tiny_full_run / "results" / "al").glob("*/seed_*/round_*/labelled.csv")
    )
    assert len(training_sets) == 1 + 2 * len(STRATEGIES)
    for path in training_sets:
        trained_on = set(pd.read_csv(path, dtype={"id_str": str})["id_str"])
        assert trained_on and not trained_on & held_out, path
    # The supervised run trains on every labelled galaxy outside test and val.
    full = set(pd.read_csv(training_sets[0], dtype={"id_str": str})["id_str"])
    assert full == set(splits.loc[splits["split"].isin(["initial", "pool"]), "id_str"])


def test_the_w20_binomial_head_with_warm_started_rounds_runs_end_to_end(tiny_data_run, tmp_path):
    """Train, predict, summarise, evaluate and acquire with one answer's binomial head (W+20),
    each round continuing from the previous round's model, every layer trained as W+20's mode
    does (no pretrained features); no baseline strategy was run. Two prediction groups: each
    round's pool is scored one group at a time and never gathered."""
    import shutil

    from zooflow.posteriors import read_predictions

    workdir = tmp_path / "binomial"
    shutil.copytree(tiny_data_run, workdir, symlinks=True)  # the data stage is already done
    (workdir / "binomial.yaml").write_text(
        "train: {head: binomial, binomial_answer: smooth-or-featured_smooth}\n"
        "active_learning: {warm_start: true, strategies: [bald], rounds: 2,"
        " train: {freeze_trunk: false}}\n"
        "predict: {shard_groups: 2}\n"
        "pretrain: {enabled: false}\n"
    )
    result = run_snakemake(workdir, "--configfile", str(TINY_CONFIG), "binomial.yaml")
    ran = result.stdout + result.stderr
    assert "rule train:" in ran and "rule simulate:" not in ran  # the data stage is reused
    assert "rule pretrain:" not in ran
    bald_1 = _round(workdir, "bald", 1)
    ids, _, predictions, attrs = read_predictions(bald_1 / "test_predictions.h5")
    assert attrs["head"] == "binomial" and predictions.shape == (len(ids), 1, 5)
    assert ((predictions > 0) & (predictions < 1)).all()
    summary = json.loads((bald_1 / "evaluation" / "summary.json").read_text())
    assert summary["head"] == "binomial" and 0 < summary["rmse"] < 1
    assert np.isfinite(summary["test_nll"])
    posteriors = pd.read_parquet(bald_1 / "test_posteriors.parquet")
    assert {
        "smooth-or-featured_smooth_fraction",
        "smooth-or-featured_smooth_probability_hi",
    } <= set(posteriors.columns)
    scores = pd.read_csv(_round(workdir, "bald", 0) / "scores.csv", dtype={"id_str": str})
    acquired = pd.read_csv(_round(workdir, "bald", 0) / "acquired.csv", dtype={"id_str": str})
    best = scores.sort_values(["score", "id_str"], ascending=[False, True])["id_str"].head(8)
    assert list(acquired["id_str"]) == list(best)
    waiting = pd.read_csv(_round(workdir, "bald", 0) / "unlabelled.csv", dtype={"id_str": str})
    assert sorted(scores["id_str"]) == sorted(waiting["id_str"])  # every waiting galaxy, once
    round_logs = workdir / "logs" / "al" / "bald" / "seed_42" / "round_0"
    for group in (0, 1):
        assert "bald scored" in (round_logs / f"score_{group}.log").read_text()
    assert not (_round(workdir, "bald", 0) / "pool_predictions.h5").exists()
    # Round 1 started from round 0's weights.
    log = (workdir / "logs" / "al" / "bald" / "seed_42" / "round_1" / "train.log").read_text()
    assert "warm start from results/al/bald/seed_42/round_0/model.keras" in log
    # Without the baseline strategy there is nothing to compare with, and the file says so.
    saved = json.loads((workdir / "results" / "al" / "labels_saved.json").read_text())
    assert saved["note"].startswith("no labels saved: the baseline 'random' was not run")


def test_editing_a_module_deep_in_the_imports_reruns_every_job_that_runs_it(tiny_full_run):
    module = tiny_full_run / "zooflow" / "calibration.py"  # reached through posteriors only
    planned = _plan_after_editing(tiny_full_run, module)
    assert "results/full/evaluation/summary.json" in planned
    assert "results/full/test_predictions.h5" in planned
    assert not [p for p in planned if p.startswith("results/data/")]
    os.utime(module, (time.time() - 3600, time.time() - 3600))
