"""Training on mock shards: the loss falls, a killed run resumes, bad numbers fail loudly."""

import json
import logging

import keras
import numpy as np
import pandas as pd
import pytest

from zooflow.data import make_dataset
from zooflow.training import TrainingConfig, TrainingDiverged, train_model

pytestmark = pytest.mark.slow

SMALL = dict(batch_size=16, learning_rate=2e-3, augment=False, cache=True, patience=50)


def _train(survey, out, config, **kwargs):
    return train_model(
        [survey.shards["initial"], survey.shards["pool"]],
        [survey.shards["val"]],
        survey.schema,
        config,
        model_path=out / "model.keras",
        history_path=out / "history.csv",
        state_dir=out / "state",
        seed=3,
        **kwargs,
    )


def test_a_few_training_steps_lower_the_loss(tiny_survey, tmp_path):
    history = _train(tiny_survey, tmp_path, TrainingConfig(epochs=4, **SMALL))
    assert len(history) == 4
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert (tmp_path / "model.keras").exists()
    assert not (tmp_path / "state").exists()  # resume state is cleared once training completes
    per_question = [c for c in history.columns if c.startswith("val_loss_")]
    assert len(per_question) == tiny_survey.schema.n_questions


class _Killed(RuntimeError):
    pass


class _KillAfterEpoch(keras.callbacks.Callback):
    """Stands in for the job being killed once an epoch has finished and been backed up."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Killed(f"killed after epoch {epoch}")


def test_an_interrupted_training_resumes_at_its_last_epoch(tiny_survey, tmp_path):
    config = TrainingConfig(epochs=4, **SMALL)
    with pytest.raises(_Killed):
        _train(tiny_survey, tmp_path, config, extra_callbacks=[_KillAfterEpoch(1)])
    assert not (tmp_path / "model.keras").exists()
    partial = pd.read_csv(tmp_path / "state" / "history.csv")
    assert partial["epoch"].tolist() == [0, 1]

    history = _train(tiny_survey, tmp_path, config)
    # The rerun did epochs 2 and 3 only; the log holds each epoch once.
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    assert history["loss"].iloc[:2].tolist() == partial["loss"].tolist()
    assert (tmp_path / "model.keras").exists()


def test_a_training_killed_under_other_settings_starts_afresh_and_says_so(
    tiny_survey, tmp_path, caplog
):
    """Resuming another setting's state would mix two trainings in one history."""
    with pytest.raises(_Killed):
        _train(
            tiny_survey,
            tmp_path / "run",
            TrainingConfig(epochs=3, **SMALL),
            extra_callbacks=[_KillAfterEpoch(0)],
        )
    changed = TrainingConfig(epochs=2, **{**SMALL, "learning_rate": 1e-3})
    with caplog.at_level(logging.INFO, logger="zooflow.training"):
        history = _train(tiny_survey, tmp_path / "run", changed)
    assert "epochs 3 -> 2, learning_rate 0.002 -> 0.001" in caplog.text
    assert "starting afresh" in caplog.text
    # Exactly what a training that was never interrupted gives.
    never_killed = _train(tiny_survey, tmp_path / "clean", changed)
    assert history["epoch"].tolist() == [0, 1]
    np.testing.assert_allclose(history["loss"], never_killed["loss"], rtol=1e-6)
    recorded = json.loads((tmp_path / "run" / "training_config.json").read_text())
    assert recorded["epochs"] == 2 and recorded["learning_rate"] == 1e-3


def test_training_data_are_exactly_the_labelled_set_with_its_votes(tiny_survey):
    """No label enters except through the labelled set: the shards' votes are not read."""
    schema = tiny_survey.schema
    catalogue = pd.read_parquet(tiny_survey.catalogue)
    splits = pd.read_csv(tiny_survey.splits)
    pool_ids = splits.loc[splits["split"] == "pool", "id_str"].head(5).tolist()
    labels = catalogue.set_index("id_str").loc[pool_ids, schema.label_cols].reset_index()
    # Votes the shards do not hold, different for every galaxy, so a mix-up would show.
    labels[schema.label_cols] = np.repeat(
        100 + np.arange(len(labels))[:, None], schema.n_answers, 1
    )
    dataset = make_dataset(
        [tiny_survey.shards["initial"], tiny_survey.shards["pool"]],
        schema,
        batch_size=4,
        labels=labels,
        with_ids=True,
    )
    expected = labels.set_index("id_str")[schema.label_cols]
    seen_ids = []
    for _, votes, ids in dataset:
        batch_ids = [i.decode() for i in ids.numpy()]
        np.testing.assert_array_equal(votes.numpy(), expected.loc[batch_ids].to_numpy())
        seen_ids.extend(batch_ids)
    assert sorted(seen_ids) == sorted(pool_ids)


def test_a_labelled_galaxy_missing_from_the_shards_fails_loudly(tiny_survey):
    schema = tiny_survey.schema
    labels = pd.DataFrame({"id_str": ["not_in_any_shard"], **{c: [1] for c in schema.label_cols}})
    dataset = make_dataset([tiny_survey.shards["initial"]], schema, batch_size=4, labels=labels)
    with pytest.raises(Exception, match="expected to contain"):
        list(dataset)


class _PoisonWeights(keras.callbacks.Callback):
    """Stands in for a diverging optimiser: the weights turn to NaN mid-epoch."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])


def test_a_loss_that_becomes_nan_fails_the_step_instead_of_saving(tiny_survey, tmp_path):
    with pytest.raises(TrainingDiverged, match="NaN"):
        _train(
            tiny_survey,
            tmp_path,
            TrainingConfig(epochs=2, **SMALL),
            extra_callbacks=[_PoisonWeights()],
        )
    assert not (tmp_path / "model.keras").exists()


def test_corrupt_votes_in_a_labelled_set_are_refused_naming_the_row(tiny_survey):
    schema = tiny_survey.schema
    labels = pd.DataFrame({"id_str": ["a", "b"], **{c: [1.0, 2.0] for c in schema.label_cols}})
    labels.loc[1, "bar_weak"] = np.nan
    with pytest.raises(ValueError, match=r"row 1 \(b\).*bar_weak"):
        make_dataset([tiny_survey.shards["initial"]], schema, batch_size=2, labels=labels)


def test_a_seeded_run_trains_identically_twice(tiny_survey, tmp_path):
    config = TrainingConfig(epochs=1, **SMALL)
    first = _train(tiny_survey, tmp_path / "a", config)
    second = _train(tiny_survey, tmp_path / "b", config)
    np.testing.assert_allclose(first["loss"], second["loss"], rtol=1e-6)


def test_bad_training_settings_are_refused():
    with pytest.raises(ValueError, match="head"):
        TrainingConfig(head="gaussian")
    with pytest.raises(ValueError, match="device"):
        TrainingConfig(device="tpu")


def test_the_gpu_path_mixed_precision_and_mirrored_strategy_trains(
    tiny_survey, tmp_path, monkeypatch
):
    """What `device: auto` does on GPU machines, exercised on the CPU: a MirroredStrategy and the
    mixed_float16 policy. The head must still emit float32 and the loss stay finite."""
    import tensorflow as tf

    import zooflow.training as training

    def mirrored_mixed(seed, deterministic, device="auto"):
        keras.utils.set_random_seed(seed)
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy(["/cpu:0"])

    monkeypatch.setattr(training, "configure_tensorflow", mirrored_mixed)
    try:
        history = _train(tiny_survey, tmp_path, TrainingConfig(epochs=1, **SMALL))
        model = keras.models.load_model(tmp_path / "model.keras", compile=False)
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history["loss"]).all()


def test_a_frozen_trunk_keeps_its_pretrained_features_and_trains_the_head(tiny_survey, tmp_path):
    from zooflow.models import build_model, load_model, save_feature_weights, split_trunk_head

    source = build_model("w20_cnn", input_shape=(32, 32, 1), head="dirichlet", n_answers=34, seed=9)
    weights = save_feature_weights(source, tmp_path / "features.weights.h5")
    config = TrainingConfig(epochs=3, freeze_trunk=True, weights_path=str(weights), **SMALL)
    history = _train(tiny_survey, tmp_path, config)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    trained = load_model(tmp_path / "model.keras")
    features = split_trunk_head(trained)[0].get_layer("features")
    for expected, got in zip(
        split_trunk_head(source)[0].get_layer("features").get_weights(),
        features.get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)
    head_before = split_trunk_head(source)[1].get_layer("logits").get_weights()[0]
    head_after = split_trunk_head(trained)[1].get_layer("logits").get_weights()[0]
    assert not np.allclose(head_before, head_after)
    with pytest.raises(ValueError, match="train.weights_path"):
        _train(tiny_survey, tmp_path / "none", TrainingConfig(epochs=1, freeze_trunk=True, **SMALL))


def test_the_learning_rate_warms_up_then_drops_on_a_plateau(caplog, capsys, tmp_path):
    from zooflow.training import learning_rate_schedule

    csv = tmp_path / "history.csv"
    config = TrainingConfig(
        learning_rate=0.01, warmup_epochs=3, lr_patience=2, lr_factor=0.5, epochs=10
    )
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    rates = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate.numpy()))

    x = np.zeros((8, 1), "float32")  # nothing to learn: the validation loss never improves
    with caplog.at_level(logging.INFO, logger="zooflow.training"):
        model.fit(
            x,
            x,
            validation_data=(x, x + 1),
            epochs=10,
            verbose=0,
            callbacks=[*learning_rate_schedule(config), Record(), keras.callbacks.CSVLogger(csv)],
        )
    # The history keeps the rate of every epoch, the warm-up's included.
    np.testing.assert_allclose(pd.read_csv(csv)["learning_rate"], rates, rtol=1e-6)
    np.testing.assert_allclose(rates[:4], [0.0025, 0.005, 0.0075, 0.01], rtol=1e-6)
    assert rates[-1] < 0.01 and min(rates) >= 0.01 / 100
    # Each drop is one line of the job's log, at the rate the next epoch then uses.
    lowered = [r.getMessage() for r in caplog.records if "learning rate lowered" in r.getMessage()]
    after = [*rates, float(model.optimizer.learning_rate.numpy())]  # a drop at the last epoch
    drops = [b for a, b in zip(after[:-1], after[1:], strict=True) if b < a]
    assert len(lowered) == len(drops) >= 1
    assert all(f"lowered to {rate:.3g} " in line for line, rate in zip(lowered, drops, strict=True))
    assert "ReduceLROnPlateau" not in capsys.readouterr().out
    assert learning_rate_schedule(TrainingConfig()) == []
