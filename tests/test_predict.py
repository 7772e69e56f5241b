"""MC-dropout prediction: one trunk pass + T head samples, streamed to Zoobot's HDF5 layout."""

import h5py
import keras
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zooflow.data import load_split
from zooflow.models import CONCENTRATION_FLOOR, build_model, split_trunk_head
from zooflow.posteriors import gather_and_summarise, read_predictions
from zooflow.predict import (
    predict_catalogue,
    sample_posteriors,
    sample_posteriors_full_passes,
)

pytestmark = pytest.mark.slow


def _saved_model(path, schema, dropout_rate=0.5):
    keras.utils.set_random_seed(0)
    model = build_model(
        "w20_cnn",
        input_shape=(32, 32, 1),
        head="dirichlet",
        n_answers=schema.n_answers,
        dropout_rate=dropout_rate,
        augment=False,
    )
    model.save(path)
    return model


def test_sampling_the_head_on_one_trunk_pass_matches_full_passes(tiny_survey, tmp_path):
    schema = tiny_survey.schema
    model = _saved_model(tmp_path / "m.keras", schema)
    trunk, head = split_trunk_head(model)
    _, _, images = load_split(tiny_survey.shards["test"] / "manifest.json")
    batch = images[:3].astype("float32")
    keras.utils.set_random_seed(1)
    fast = sample_posteriors(trunk, head, batch, passes=400, seed=1)
    slow = sample_posteriors_full_passes(model, batch, passes=400)
    assert fast.shape == slow.shape == (3, schema.n_answers, 400)
    # Same distribution: each output's samples pass a two-sample KS test, and dropout is live.
    p_values = [
        stats.ks_2samp(fast[g, a], slow[g, a]).pvalue for g in range(3) for a in range(0, 34, 5)
    ]
    assert min(p_values) > 1e-4
    assert fast.std(axis=2).mean() > 1e-3  # exactly 0 if dropout were off


def test_pass_t_is_one_network_for_every_galaxy(tiny_survey, tmp_path):
    """Joint samples across galaxies: a galaxy's sample t does not depend on its batch."""
    model = _saved_model(tmp_path / "m.keras", tiny_survey.schema)
    trunk, head = split_trunk_head(model)
    _, _, images = load_split(tiny_survey.shards["test"] / "manifest.json")
    one = images[:1]
    batch = np.concatenate([images[1:4], one, images[4:6], one]).astype("float32")
    samples = sample_posteriors(trunk, head, batch, passes=20, seed=3)
    alone = sample_posteriors(trunk, head, one.astype("float32"), passes=20, seed=3)
    np.testing.assert_allclose(samples[3], samples[6], rtol=1e-6)
    np.testing.assert_allclose(samples[3], alone[0], rtol=1e-5)
    assert samples[3].std(axis=1).mean() > 1e-3  # dropout is live: the passes differ
    other = sample_posteriors(trunk, head, one.astype("float32"), passes=20, seed=4)
    assert not np.allclose(other[0], alone[0])


def test_prediction_file_has_zoobots_layout(tiny_survey, tmp_path):
    schema = tiny_survey.schema
    _saved_model(tmp_path / "m.keras", schema)
    out = tmp_path / "test_predictions.h5"
    n = predict_catalogue(
        tmp_path / "m.keras", [tiny_survey.shards["test"]], schema, out, passes=6, batch_size=5
    )
    ids, votes, predictions, attrs = read_predictions(out)
    shard_ids, shard_votes, _ = load_split(tiny_survey.shards["test"] / "manifest.json")
    assert n == len(shard_ids)
    assert list(ids) == list(shard_ids)
    np.testing.assert_array_equal(votes, shard_votes)
    assert predictions.shape == (n, schema.n_answers, 6)
    assert predictions.dtype == np.float32
    assert ((predictions > CONCENTRATION_FLOOR) & np.isfinite(predictions)).all()
    assert attrs["head"] == "dirichlet" and attrs["passes"] == 6
    assert attrs["dropout_masks"] == "shared"
    with h5py.File(out) as f:
        assert list(f["label_cols"].asstr()[:]) == schema.label_cols
        assert f["predictions"].compression == "gzip"


def test_the_head_comes_from_the_model_and_travels_in_the_predictions_file(tiny_survey, tmp_path):
    """No head setting is needed downstream: predict reads it from the model, acquire from the
    predictions file."""
    from zooflow.acquisition import acquire
    from zooflow.modelcard import read_model_card, write_model_card
    from zooflow.rounds import start_rounds

    schema = tiny_survey.schema
    keras.utils.set_random_seed(0)
    binomial = build_model(
        "w20_cnn", input_shape=(32, 32, 1), head="binomial", n_answers=1, augment=False
    )
    binomial.save(tmp_path / "binomial.keras")
    assert read_model_card(tmp_path / "binomial.keras").head is None  # saved without a card
    start_rounds(
        tiny_survey.splits,
        tiny_survey.catalogue,
        schema,
        tmp_path / "labelled.csv",
        tmp_path / "unlabelled.csv",
    )
    predict_catalogue(
        tmp_path / "binomial.keras",
        [tiny_survey.shards["pool"]],
        schema,
        tmp_path / "pool.h5",
        passes=4,
        ids=tmp_path / "unlabelled.csv",
    )
    _, _, predictions, attrs = read_predictions(tmp_path / "pool.h5")
    assert attrs["head"] == "binomial" and predictions.shape[1:] == (1, 4)
    acquire(
        tmp_path / "pool.h5",
        tmp_path / "unlabelled.csv",
        tiny_survey.catalogue,
        schema,
        strategy="bald",
        n_acquire=3,
        scores_out=tmp_path / "scores.csv",
        acquired_out=tmp_path / "acquired.csv",
    )
    # Binomial BALD scores one answer: its only per-question column is "mi_answer".
    assert "mi_answer" in pd.read_csv(tmp_path / "scores.csv").columns

    # The card written at training wins over the output count (and says what was trained).
    write_model_card(
        tmp_path / "binomial.keras",
        label_cols=schema.label_cols,
        tree=schema.name,
        question_suffix="",
        head="binomial",
    )
    card = read_model_card(tmp_path / "binomial.keras")
    assert card.head == "binomial" and card.input_shape == (32, 32, 1) and card.outputs == 1


def test_representations_come_from_the_same_trunk_pass_and_gather_with_the_samples(
    tiny_survey, tmp_path
):
    schema = tiny_survey.schema
    model = _saved_model(tmp_path / "m.keras", schema)
    trunk, _ = split_trunk_head(model)
    parts = []
    for group in range(2):
        parts.append(tmp_path / f"group_{group}.h5")
        predict_catalogue(
            tmp_path / "m.keras",
            [tiny_survey.shards["pool"]],
            schema,
            parts[-1],
            passes=3,
            batch_size=4,
            shard_group=(group, 2),
            features=True,
        )
    gather_and_summarise(parts, tmp_path / "pool.h5", tmp_path / "pool.parquet", schema)
    ids, _, images = load_split(tiny_survey.shards["pool"] / "manifest.json")
    with h5py.File(tmp_path / "pool.h5") as f:
        gathered_ids = f["id_str"].asstr()[:]
        features = f["features"][:]
    expected = trunk(images.astype("float32"), training=False).numpy()
    order = [list(ids).index(i) for i in gathered_ids]
    assert features.shape == (len(ids), trunk.output.shape[-1])
    np.testing.assert_allclose(features, expected[order], rtol=1e-4, atol=1e-5)


def test_shard_groups_gather_to_the_same_predictions(tiny_survey, tmp_path):
    schema = tiny_survey.schema
    _saved_model(tmp_path / "m.keras", schema, dropout_rate=0.0)  # deterministic
    whole = tmp_path / "whole.h5"
    predict_catalogue(tmp_path / "m.keras", [tiny_survey.shards["pool"]], schema, whole, passes=2)
    parts = []
    for group in range(3):
        parts.append(tmp_path / f"group_{group}.h5")
        predict_catalogue(
            tmp_path / "m.keras",
            [tiny_survey.shards["pool"]],
            schema,
            parts[-1],
            passes=2,
            shard_group=(group, 3),
        )
    gathered = tmp_path / "gathered.h5"
    summary = tmp_path / "posteriors.parquet"
    gather_and_summarise(parts, gathered, summary, schema)
    ids_whole, _, pred_whole, _ = read_predictions(whole)
    ids_gathered, _, pred_gathered, _ = read_predictions(gathered)
    order = np.argsort(ids_gathered)
    assert sorted(ids_whole) == list(ids_gathered[order])
    np.testing.assert_allclose(pred_whole[np.argsort(ids_whole)], pred_gathered[order], rtol=1e-5)
    table = pd.read_parquet(summary)
    assert len(table) == len(ids_whole)


def test_summary_gives_fractions_intervals_and_p_asked(tiny_survey, tmp_path):
    schema = tiny_survey.schema
    _saved_model(tmp_path / "m.keras", schema)
    out = tmp_path / "p.h5"
    predict_catalogue(tmp_path / "m.keras", [tiny_survey.shards["test"]], schema, out, passes=8)
    summary = tmp_path / "s.parquet"
    gather_and_summarise([out], tmp_path / "g.h5", summary, schema)
    table = pd.read_parquet(summary)
    for question in schema.questions:
        cols = [f"{c}_fraction" for c in schema.label_cols[question.indices]]
        np.testing.assert_allclose(table[cols].sum(axis=1), 1.0, rtol=1e-6)
    for col in schema.label_cols:
        assert (table[f"{col}_probability_lo"] <= table[f"{col}_fraction"] + 1e-9).all()
        assert (table[f"{col}_fraction"] <= table[f"{col}_probability_hi"] + 1e-9).all()
    assert (table["smooth-or-featured_p_asked"] == 1.0).all()
    featured = table["smooth-or-featured_featured-or-disk_fraction"]
    np.testing.assert_allclose(table["disk-edge-on_p_asked"], featured, rtol=1e-6)
