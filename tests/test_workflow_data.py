"""The data stage run through Snakemake: simulate -> ingest -> preprocess -> split -> shards."""

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY_CONFIG, copy_workflow, planned_updates, run_snakemake
from zooflow.data import load_split
from zooflow.schema import load_schema


@pytest.mark.slow
def test_data_stage_turns_the_mock_survey_into_shards(tiny_data_run):
    data = tiny_data_run / "results" / "data"
    catalogue = pd.read_parquet(data / "catalogue.parquet")
    rejected = pd.read_csv(data / "rejected.csv")
    assert len(catalogue) + len(rejected) == 80
    assert len(rejected) == 0, rejected.to_string()

    schema = load_schema("decals_dr5")
    splits = pd.read_csv(data / "splits.csv")
    assert set(splits["split"]) <= {"test", "val", "initial", "pool"}
    seen = []
    for split in ("test", "val", "initial", "pool"):
        manifest = json.loads((data / "shards" / split / "manifest.json").read_text())
        assert manifest["count"] == int((splits["split"] == split).sum())
        assert manifest["label_cols"] == schema.label_cols
        assert manifest["image_shape"] == [32, 32, 3]  # colour by default
        ids, votes, images = load_split(data / "shards" / split / "manifest.json")
        expected = catalogue.set_index("id_str").loc[list(ids), schema.label_cols].to_numpy()
        np.testing.assert_array_equal(votes, expected)
        assert images.shape == (len(ids), 32, 32, 3)
        seen.extend(ids)
    assert sorted(seen) == sorted(catalogue["id_str"])
    for step in ("simulate", "ingest", "preprocess", "split"):
        assert (tiny_data_run / "logs" / f"{step}.log").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("mock:\n  n_galaxy: 10\n", "n_galaxy"),
        ("preprocess:\n  image_size: big\n", "big"),
        ("splits:\n  test_fractoin: 0.1\n", "test_fractoin"),
        ("data:\n  source: sdss\n", "sdss"),
    ],
)
def test_a_misspelt_or_mistyped_config_key_stops_the_run_naming_it(tmp_path, override, named):
    workdir = copy_workflow(tmp_path / "wf")
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    result = run_snakemake(workdir, "-n", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "Error validating config file" in result.stderr + result.stdout
    assert named in result.stderr + result.stdout


def test_an_unknown_tree_stops_the_plan_naming_the_key_and_the_built_in_trees(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: {tree: decals}\n")
    result = run_snakemake(workdir, "-n", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert (
        "schema.tree: 'decals' is neither a built-in tree (gz2, decals_dr5) nor an existing "
        "YAML file" in result.stdout + result.stderr
    )


@pytest.mark.slow
def test_a_failed_step_says_why_once(tiny_data_run, tmp_path):
    """Too many rejected rows: the reason, not four copies of it (log, traceback, Python's own
    traceback, and Snakemake showing the log)."""
    workdir = tmp_path / "wf"
    shutil.copytree(tiny_data_run, workdir)
    catalogue = pd.read_csv(workdir / "results" / "data" / "mock" / "catalogue.csv")
    catalogue.loc[:9, "bar_no"] = -1
    catalogue.to_csv(workdir / "bad_catalogue.csv", index=False)
    config = tmp_path / "bad.yaml"
    config.write_text(
        "data: {source: catalogue, catalogue: bad_catalogue.csv, images: results/data/mock/images}\n"
    )
    result = run_snakemake(
        workdir,
        "results/data/catalogue.parquet",
        "--configfile",
        str(TINY_CONFIG),
        str(config),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("10 of 80 catalogue rows rejected (12.5%)") == 1, output
    assert "row 0 (id_str 'mock_000000'): negative vote count -1 in bar_no" in output


@pytest.mark.slow
def test_a_changed_question_suffix_reaches_the_steps_through_the_resolved_tree_alone(
    tiny_data_run, tmp_path
):
    """The suffix is written once, into results/data/tree.yaml: resolve_tree is the one step
    whose params carry it, and every step that reads the tree follows the rewritten file."""
    resolved = load_schema(tiny_data_run / "results" / "data" / "tree.yaml")
    assert resolved == load_schema("decals_dr5") and resolved.question_suffix == ""
    assert planned_updates(tiny_data_run, targets=("data",)) == []

    planned = planned_updates(
        tiny_data_run, config={"schema": {"question_suffix": "-dr5"}}, targets=("data",)
    )
    for product in ("tree.yaml", "mock/catalogue.csv", "catalogue.parquet", "shards/test"):
        assert f"results/data/{product}" in planned, planned

    suffixed = tmp_path / "suffixed.yaml"
    suffixed.write_text('schema: {question_suffix: "-dr5"}\n')
    plan = run_snakemake(
        tiny_data_run, "-n", "data", "--configfile", str(TINY_CONFIG), str(suffixed)
    ).stdout
    assert "Rules with provenance triggered jobs: resolve_tree\n" in plan, plan
    assert re.search(r"params have changed since last execution:\n\s+resolve_tree\n", plan), plan
    for rule in ("simulate", "ingest", "shards"):
        reason = re.search(rf"rule {rule}:\n.*?reason: ([^\n]*)", plan, re.DOTALL).group(1)
        assert reason.startswith("Input files updated by another job") and "tree.yaml" in reason


@pytest.mark.slow
def test_a_checkout_moved_with_its_results_reruns_nothing(tiny_data_run, tmp_path):
    """Snakemake compares each job's recorded set of inputs: the zooflow modules and the
    built-in tree are recorded relative to the working directory, not as absolute paths."""
    moved = tmp_path / "elsewhere" / "zooflow-run"
    shutil.copytree(tiny_data_run, moved, symlinks=True)
    assert planned_updates(moved, targets=("data",)) == []
    # The survey's images are found in the moved folder, should preprocessing run again.
    file_loc = pd.read_parquet(moved / "results" / "data" / "catalogue.parquet")["file_loc"]
    assert all(not Path(path).is_absolute() and (moved / path).is_file() for path in file_loc)
    module = moved / "zooflow" / "splits.py"  # still tracked after the move (by content)
    module.write_text(module.read_text() + "# edited\n")
    assert "results/data/splits.csv" in planned_updates(moved, targets=("data",))


@pytest.mark.slow
def test_a_sample_selection_reruns_ingest_and_what_follows_not_the_survey(tiny_data_run):
    """ingest.min_votes is a param of ingest: setting it redoes the catalogue and its products,
    while the rendered survey stays."""
    planned = planned_updates(
        tiny_data_run, config={"ingest": {"min_votes": {"bar": 11}}}, targets=("data",)
    )
    for product in ("catalogue.parquet", "splits.csv", "shards/test"):
        assert f"results/data/{product}" in planned, planned
    assert not [p for p in planned if p.startswith("results/data/mock/")], planned


def test_the_default_config_is_valid_and_plans_the_data_stage(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    result = run_snakemake(workdir, "-n", "data")
    for rule in ("simulate", "ingest", "preprocess", "split", "shards"):
        assert rule in result.stdout
    # Nested values on the command line arrive as strings; they are typed by the schema.
    nested = (
        "--config",
        "predict={calibrate: false}",
        "preprocess={image_size: 48}",
        "train={epochs: 3}",
    )
    result = run_snakemake(workdir, "-n", "data", *nested, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_and_format_are_clean():
    import subprocess
    import sys

    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


assert TINY_CONFIG.exists()


def test_every_mock_survey_setting_can_be_set_from_the_config():
    import dataclasses

    import yaml

    from zooflow.mock import MockSurveyConfig

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    allowed = set(schema["properties"]["mock"]["properties"])
    assert allowed == {f.name for f in dataclasses.fields(MockSurveyConfig)}


def test_every_training_setting_can_be_set_from_the_config():
    import dataclasses

    import yaml

    from zooflow.training import TrainingConfig

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    allowed = set(schema["properties"]["train"]["properties"])
    # train.seed is the supervised run's seed, handed to the training on its own.
    assert allowed - {"seed"} == {f.name for f in dataclasses.fields(TrainingConfig)}


@pytest.mark.parametrize("name", ["gz2.yaml", "decals.yaml"])
def test_the_real_catalogue_configs_are_valid_and_name_their_inputs(tmp_path, name):
    workdir = copy_workflow(tmp_path / "wf")
    result = run_snakemake(
        workdir, "-n", "data", "--configfile", str(workdir / "config" / name), check=False
    )
    # No catalogue is shipped: the plan must fail on the missing catalogue, not on the config.
    output = result.stdout + result.stderr
    assert "Error validating config file" not in output
    assert "Missing input files" in output and "data/" in output


def test_the_default_plan_pretrains_once_and_every_round_trains_its_head_on_those_features(
    tmp_path,
):
    workdir = copy_workflow(tmp_path / "wf")
    plan = run_snakemake(workdir, "-n", "all", "full")
    assert len(re.findall(r"rule pretrain:", plan.stdout)) == 1
    trainings = re.findall(r"rule train:\n\s+input: ([^\n]*)", plan.stdout)
    # The supervised run, then 3 seeds x 6 rounds of EPIG and random's rounds 1-5 (round 0 is
    # shared), every one starting from the pretrained features.
    assert len(trainings) == 1 + 3 * 6 + 3 * 5
    features = "results/pretrain/features.weights.h5"
    assert all(features in inputs.split(", ") for inputs in trainings)
    # The rounds keep those features fixed; the supervised run trains every layer.
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    assert config["active_learning"]["train"] == {"freeze_trunk": True}
    assert not config["train"].get("freeze_trunk", False)
    # A given train.weights_path takes precedence over the pretraining survey.
    weights = workdir / "my.weights.h5"
    weights.write_bytes(b"a dry run only looks at its timestamp")
    (workdir / "mine.yaml").write_text(f"train: {{weights_path: {weights}}}\n")
    plan = run_snakemake(workdir, "-n", "all", "--configfile", "mine.yaml")
    assert "rule pretrain:" not in plan.stdout
    # Without either, frozen rounds would have no features to keep: said while planning, before
    # the data stage runs; the supervised run alone (every layer trained) still plans.
    (workdir / "scratch.yaml").write_text("pretrain: {enabled: false}\n")
    plan = run_snakemake(workdir, "-n", "all", "--configfile", "scratch.yaml", check=False)
    assert plan.returncode != 0
    assert re.search(
        r"active_learning.train.freeze_trunk is true: al/\w+/seed_\d+/round_\d+ would train "
        "only the head on fixed features, but there are none to keep",
        plan.stdout + plan.stderr,
    )
    plan = run_snakemake(workdir, "-n", "full", "--configfile", "scratch.yaml")
    assert "rule train:" in plan.stdout and "rule pretrain:" not in plan.stdout


def test_a_run_in_another_folder_still_starts_from_the_default_config(tmp_path):
    # config/config.yaml sets 32-pixel images; the schema's own default is 64. Without the file,
    # a run in another folder would silently fall back to the schema's defaults.
    workdir = copy_workflow(tmp_path / "wf")
    small = tmp_path / "small.yaml"
    small.write_text("mock: {n_galaxies: 24}\n")
    run_snakemake(
        workdir, "results/data/images.h5", "--directory", "elsewhere", "--configfile", str(small)
    )
    with h5py.File(workdir / "elsewhere" / "results" / "data" / "images.h5", "r") as f:
        assert f["images"].shape[:3] == (24, 32, 32)
    assert not (workdir / "results").exists()
