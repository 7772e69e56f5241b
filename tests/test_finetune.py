"""Fine-tuning a trained network to a question it was not trained on (zooflow.finetune)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from conftest import TINY_CONFIG, copy_workflow, run_snakemake
from zooflow.data import make_dataset
from zooflow.finetune import FineTuneConfig, choose_labels, finetune_network, split_labels
from zooflow.models import build_model
from zooflow.schema import load_schema
from zooflow.splits import SPLITS

REPO = Path(__file__).resolve().parents[1]
MERGING_TREE = REPO / "config" / "studies" / "merging_tree.yaml"


@pytest.fixture(scope="module")
def base_model(tiny_survey, tmp_path_factory) -> Path:
    """An (untrained) network of the survey's whole tree, saved as a run would save it."""
    path = tmp_path_factory.mktemp("finetune") / "base.keras"
    build_model(
        "compact_cnn",
        input_shape=(32, 32, 1),
        head="dirichlet",
        n_answers=tiny_survey.schema.n_answers,
        seed=0,
    ).save(path)
    return path


@pytest.fixture(scope="module")
def new_question(tiny_survey):
    schema = load_schema(MERGING_TREE)
    catalogue = pd.read_parquet(tiny_survey.catalogue)
    splits = pd.read_csv(tiny_survey.splits, dtype=str)
    return schema, catalogue, splits


def trunk_weights(model: keras.Model) -> list[np.ndarray]:
    return model.get_layer("trunk").get_weights()


def test_labels_are_drawn_from_the_training_splits_with_votes_on_the_new_tree(new_question):
    schema, catalogue, splits = new_question
    first = choose_labels(catalogue, splits, schema, n=20, seed=3)
    assert list(first.columns) == ["id_str", *schema.label_cols]
    assert len(first) == 20 and first["id_str"].is_unique
    training = set(splits.loc[splits["split"].isin(["initial", "pool"]), "id_str"])
    assert set(first["id_str"]) <= training
    assert (first[schema.label_cols].sum(axis=1) > 0).all()
    # Reproducible, and a larger draw with the same seed starts with the smaller one.
    larger = choose_labels(catalogue, splits, schema, n=40, seed=3)
    assert larger["id_str"].head(20).tolist() == first["id_str"].tolist()
    assert (
        choose_labels(catalogue, splits, schema, n=20, seed=4)["id_str"].tolist()
        != first["id_str"].tolist()
    )
    available = len(training)
    with pytest.raises(ValueError, match=rf"finetune.labels = 500, but only {available} galaxies"):
        choose_labels(catalogue, splits, schema, n=500, seed=3)
    val = split_labels(catalogue, splits, schema, "val")
    assert set(val["id_str"]) == set(splits.loc[splits["split"] == "val", "id_str"])


def test_a_tree_whose_columns_the_catalogue_lacks_is_refused_naming_them(new_question):
    _, catalogue, splits = new_question
    ring = load_schema(MERGING_TREE)
    catalogue = catalogue.drop(columns=["merging_merger"])
    with pytest.raises(ValueError, match=r"no columns \['merging_merger'\] of tree 'merging'"):
        choose_labels(catalogue, splits, ring, n=5, seed=0)


def test_the_shards_images_come_with_the_new_trees_votes(tiny_survey, new_question):
    schema, catalogue, splits = new_question
    labels = split_labels(catalogue, splits, schema, "val")
    batches = make_dataset(
        [tiny_survey.shards["val"]],
        tiny_survey.schema,
        batch_size=1000,
        labels=labels,
        label_schema=schema,
        with_ids=True,
    )
    images, votes, ids = next(iter(batches))
    assert images.shape[1:] == (32, 32, 1) and votes.shape[1] == 4
    by_id = labels.set_index("id_str")[schema.label_cols]
    read = [i.decode() for i in ids.numpy()]
    np.testing.assert_array_equal(votes.numpy(), by_id.loc[read].to_numpy(np.float32))


@pytest.mark.slow
def test_the_head_is_new_and_the_trunk_kept_then_only_its_last_layers_move(
    tiny_survey, base_model, new_question
):
    schema, catalogue, splits = new_question
    train = choose_labels(catalogue, splits, schema, n=30, seed=1)
    val = split_labels(catalogue, splits, schema, "val")
    shards = [tiny_survey.shards[s] for s in SPLITS]
    base = keras.models.load_model(base_model, compile=False)
    settings = {"labels": 30, "epochs": 3, "patience": 3, "unfreeze_epochs": 2}

    model, history = finetune_network(
        base_model, shards, tiny_survey.schema, schema, train, val, FineTuneConfig(**settings)
    )
    assert model.output.shape[-1] == schema.n_answers
    assert history["phase"].unique().tolist() == ["head"] and len(history) == 3
    for kept, before in zip(trunk_weights(model), trunk_weights(base), strict=True):
        np.testing.assert_array_equal(kept, before)
    alpha = model.predict(np.zeros((2, 32, 32, 1), np.float32), verbose=0)
    assert np.isfinite(alpha).all() and (alpha > 0).all()

    model, history = finetune_network(
        base_model,
        shards,
        tiny_survey.schema,
        schema,
        train,
        val,
        FineTuneConfig(**settings, unfreeze_layers=1),
    )
    assert history["phase"].unique().tolist() == ["head", "unfrozen"]
    moved = [
        not np.array_equal(after, before)
        for after, before in zip(trunk_weights(model), trunk_weights(base), strict=True)
    ]
    assert any(moved) and not moved[0], "only the last layer with weights may move"

    model, history = finetune_network(
        base_model,
        shards,
        tiny_survey.schema,
        schema,
        train,
        val,
        FineTuneConfig(**settings, from_scratch=True),
    )
    assert history["phase"].unique().tolist() == ["scratch"]
    assert not np.array_equal(trunk_weights(model)[0], trunk_weights(base)[0])


def test_the_constant_concentrations_are_the_dirichlet_multinomial_fit_per_question():
    from scipy.special import gammaln

    from zooflow.dirichlet_multinomial import constant_concentrations
    from zooflow.schema import schema_from_dict

    schema = schema_from_dict(
        {
            "name": "two",
            "questions": [
                {"name": "shape", "answers": ["round", "flat", "odd"]},
                {"name": "bar", "answers": ["yes", "no"], "parent": "shape_flat"},
                {"name": "ring", "answers": ["yes", "no"], "parent": "shape_odd"},
            ],
        }
    )
    rng = np.random.default_rng(5)
    true = {"shape": np.array([2.0, 0.5, 1.0]), "bar": np.array([0.3, 0.9])}
    n_galaxies = 4000
    shape = np.stack([rng.multinomial(40, p) for p in rng.dirichlet(true["shape"], n_galaxies)])
    bar = np.stack(
        [
            rng.multinomial(n, p)
            for n, p in zip(shape[:, 1], rng.dirichlet(true["bar"], n_galaxies), strict=True)
        ]
    )
    votes = np.concatenate([shape, bar, np.zeros((n_galaxies, 2))], axis=1)

    alpha = constant_concentrations(votes, schema)
    np.testing.assert_allclose(alpha[:3], true["shape"], rtol=0.1)
    np.testing.assert_allclose(alpha[3:5], true["bar"], rtol=0.15)
    np.testing.assert_array_equal(alpha[5:], [1.0, 1.0])  # nobody was asked: flat

    def log_likelihood(a, counts):
        counts = counts[counts.sum(axis=1) > 0]
        n = counts.sum(axis=1)
        return (
            gammaln(a.sum()) - gammaln(n + a.sum()) + (gammaln(counts + a) - gammaln(a)).sum(1)
        ).sum()

    # The maximum of the likelihood: any nudge of one concentration lowers it.
    best = log_likelihood(alpha[:3], shape)
    for i in range(3):
        for factor in (0.95, 1.05):
            nudged = alpha[:3].copy()
            nudged[i] *= factor
            assert log_likelihood(nudged, shape) < best
    with pytest.raises(ValueError, match=r"votes must be \(galaxies, 7\)"):
        constant_concentrations(votes[:, :3], schema)


@pytest.mark.parametrize("activation", ["softplus", "sigmoid"])
def test_a_prior_started_head_predicts_the_prior_whatever_the_features(activation):
    from zooflow.finetune import start_at_prior
    from zooflow.models import DirichletConcentration, MCDropout, build_head

    # From nearly "don't know" to nearly certain (the fit allows up to e^7).
    prior = np.array([3.0, 0.4, 1.5, 90.0]) + (1.0 if activation == "sigmoid" else 0.0)
    if activation == "softplus":
        head = build_head(64, "dirichlet", 4, 0.2, seed=0)
    else:  # the same head with Zoobot's concentration range, (1, 101)
        features = keras.Input((64,))
        logits = keras.layers.Dense(4, name="logits")(MCDropout(0.2)(features))
        concentrations = DirichletConcentration("sigmoid", name="concentrations")(logits)
        head = keras.Model(features, concentrations)
    layer = head.get_layer("concentrations")
    np.testing.assert_allclose(
        layer(layer.logits_for(prior)[None].astype(np.float32)).numpy()[0], prior, rtol=1e-4
    )
    if activation == "softplus":
        np.testing.assert_allclose(
            layer(layer.logits_for([1000.0, 1e-3])).numpy(), [1000.0, 0.01], rtol=1e-3
        )

    start_at_prior(head, prior)
    no_signal = head(np.zeros((3, 64), np.float32)).numpy()
    np.testing.assert_allclose(no_signal, np.tile(prior, (3, 1)), rtol=1e-4)
    # Features like a trunk's (non-negative, pooled) move the start only a little, and the
    # weights stay non-zero, so every one of them is trained.
    features = np.random.default_rng(0).uniform(0, 1, (500, 64)).astype(np.float32)
    np.testing.assert_allclose(np.median(head(features).numpy(), axis=0), prior, rtol=0.25)
    assert np.all(head.get_layer("logits").get_weights()[0] != 0)


@pytest.mark.parametrize("from_scratch", [False, True])
def test_both_trainings_start_their_head_at_the_labels_best_constant(
    tiny_survey, base_model, new_question, from_scratch
):
    from zooflow.dirichlet_multinomial import constant_concentrations

    schema, catalogue, splits = new_question
    train = choose_labels(catalogue, splits, schema, n=30, seed=1)
    shards = [tiny_survey.shards[s] for s in SPLITS]
    # A learning rate that moves nothing: what is left is where the head started.
    config = FineTuneConfig(labels=30, epochs=1, learning_rate=1e-12, from_scratch=from_scratch)
    model, _ = finetune_network(
        base_model, shards, tiny_survey.schema, schema, train, train, config, seed=2
    )
    prior = constant_concentrations(train[schema.label_cols].to_numpy(), schema)
    started = model.get_layer("head")(np.zeros((1, model.get_layer("head").input.shape[-1])))
    np.testing.assert_allclose(np.asarray(started)[0], prior, rtol=1e-4)

    random_start = dataclasses.replace(config, head_init="random")
    model, _ = finetune_network(
        base_model, shards, tiny_survey.schema, schema, train, train, random_start, seed=2
    )
    started = model.get_layer("head")(np.zeros((1, model.get_layer("head").input.shape[-1])))
    assert not np.allclose(np.asarray(started)[0], prior, rtol=0.05)
    with pytest.raises(ValueError, match="finetune.head_init must be one of"):
        FineTuneConfig(head_init="mean")


def test_a_base_that_does_not_fit_is_refused_before_training(
    tiny_survey, new_question, tmp_path: Path
):
    schema, catalogue, splits = new_question
    train = choose_labels(catalogue, splits, schema, n=10, seed=1)
    shards = [tiny_survey.shards[s] for s in SPLITS]
    config = FineTuneConfig(labels=10, epochs=1)
    wrong_size = tmp_path / "rgb64.keras"
    build_model("compact_cnn", input_shape=(64, 64, 3), head="dirichlet", n_answers=5, seed=0).save(
        wrong_size
    )
    with pytest.raises(ValueError, match=r"takes images of \(64, 64, 3\), the shards hold"):
        finetune_network(wrong_size, shards, tiny_survey.schema, schema, train, train, config)
    plain = tmp_path / "plain.keras"
    inputs = keras.Input((32, 32, 1))
    keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs))).save(plain)
    with pytest.raises(ValueError, match="has no 'trunk' and 'head' sub-models"):
        finetune_network(plain, shards, tiny_survey.schema, schema, train, train, config)


@pytest.mark.slow
def test_snakemake_finetune_teaches_a_trained_run_a_new_question(
    tiny_full_run: Path, tmp_path: Path
):
    import h5py
    import yaml

    from zooflow.modelcard import read_model_card

    workdir = copy_workflow(tmp_path / "workflow")
    settings = {
        "finetune": {
            "tree": str(MERGING_TREE),
            "base": str(tiny_full_run / "results" / "full"),
            "labels": 20,
            "epochs": 3,
            "patience": 2,
            "unfreeze_layers": 1,
            "unfreeze_epochs": 2,
        }
    }
    (workdir / "finetune.yaml").write_text(yaml.safe_dump(settings))
    run = run_snakemake(
        workdir, "finetune", "--configfile", str(TINY_CONFIG), "finetune.yaml", timeout=600
    )
    ran = run.stdout + run.stderr
    assert "rule finetune:" in ran and "rule train:" not in ran  # the base run is reused
    out = workdir / "results" / "finetune"
    evaluation = json.loads((out / "evaluation.json").read_text())
    splits = pd.read_csv(workdir / "results" / "data" / "splits.csv", dtype=str)
    assert evaluation["tree"] == "merging" and evaluation["n_train"] == 20
    assert evaluation["n_galaxies"] == (splits["split"] == "test").sum()
    assert np.isfinite(evaluation["test_nll"]) and evaluation["test_nll"] > 0
    assert 0 < evaluation["rmse"]["merging"] < 1
    with h5py.File(out / "test_predictions.h5") as f:
        assert [c.decode() for c in f["label_cols"][:]] == [
            "merging_none",
            "merging_minor-disturbance",
            "merging_major-disturbance",
            "merging_merger",
        ]
        assert f["predictions"].shape == (evaluation["n_galaxies"], 4, 5)
    history = pd.read_csv(out / "history.csv")
    assert history["phase"].unique().tolist() == ["head", "unfrozen"]
    assert read_model_card(out / "model.keras").tree == "merging"

    # Without a tree there is nothing to learn: the target says what to set.
    failed = run_snakemake(workdir, "finetune", "-n", "--configfile", str(TINY_CONFIG), check=False)
    assert failed.returncode != 0
    assert "finetune needs finetune.tree" in failed.stdout + failed.stderr
