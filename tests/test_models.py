"""Model builders: output sizes and ranges, MC dropout, augmentation, BatchNorm, saving, weights."""

from __future__ import annotations

import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from zooflow.models import (
    CONCENTRATION_FLOOR,
    MODELS,
    DirichletConcentration,
    GalaxyAugmentation,
    MCDropout,
    RandomCropResize,
    build_head,
    build_model,
    save_feature_weights,
    split_trunk_head,
)
from zooflow.schema import load_schema

SIDE = 32


def images(n: int = 2, channels: int = 1, seed: int = 0) -> np.ndarray:
    """uint8-range pixel values as float32, as the data pipeline feeds them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, SIDE, SIDE, channels)).astype(np.float32)


@pytest.fixture(scope="module")
def efficientnet():
    keras.utils.set_random_seed(1)
    return build_model(
        "efficientnet_b0", input_shape=(SIDE, SIDE, 1), head="dirichlet", n_answers=34, seed=1
    )


@pytest.fixture(scope="module")
def efficientnet_no_dropout():
    keras.utils.set_random_seed(2)
    return build_model(
        "efficientnet_b0",
        input_shape=(SIDE, SIDE, 3),
        head="dirichlet",
        n_answers=34,
        dropout_rate=0.0,
        seed=2,
    )


def w20(head: str = "dirichlet", n_answers: int = 34, **kwargs) -> keras.Model:
    keras.utils.set_random_seed(kwargs.get("seed") or 0)
    return build_model(
        "w20_cnn", input_shape=(SIDE, SIDE, 1), head=head, n_answers=n_answers, **kwargs
    )


@pytest.mark.parametrize("tree", ["decals_dr5", "gz2"])
def test_w20_dirichlet_outputs_one_concentration_per_answer(tree):
    schema = load_schema(tree)
    model = w20(n_answers=schema.n_answers)
    alpha = model.predict(images(3), verbose=0)
    assert alpha.shape == (3, schema.n_answers) == (3, {"decals_dr5": 34, "gz2": 30}[tree])
    assert np.all(alpha > CONCENTRATION_FLOOR) and np.all(np.isfinite(alpha))


def test_binomial_heads_output_one_probability(efficientnet):
    rho = w20(head="binomial").predict(images(3), verbose=0)
    assert rho.shape == (3, 1)
    assert np.all(rho > 0.0) and np.all(rho < 1.0)
    keras.utils.set_random_seed(3)
    binomial = build_model(
        "efficientnet_b0", input_shape=(SIDE, SIDE, 1), head="binomial", n_answers=34
    )
    assert binomial.output_shape == (None, 1)
    assert split_trunk_head(binomial)[1].output_shape == (None, 1)


def test_efficientnet_concentrations_are_positive(efficientnet):
    alpha = efficientnet.predict(images(2), verbose=0)
    assert alpha.shape == (2, 34)
    assert np.all(alpha > CONCENTRATION_FLOOR) and np.all(np.isfinite(alpha))


def test_dirichlet_head_maps_logits_through_softplus_above_the_floor():
    head = build_head(4, "dirichlet", 3, dropout_rate=0.0)
    logits_layer = head.get_layer("logits")
    logits_layer.set_weights([np.eye(4, 3, dtype=np.float32), np.zeros(3, np.float32)])
    features = np.array([[0.0, 2.0, -30.0, 0.0]], dtype=np.float32)
    expected = np.log1p(np.exp(features[:, :3])) + CONCENTRATION_FLOOR
    np.testing.assert_allclose(head(features).numpy(), expected, rtol=1e-6)
    # "Don't know" (α = 1, uniform over the answers) sits inside the range, where the gradient
    # is far from vanishing, not at a bound.
    z = tf.Variable(np.log(np.expm1(1.0 - CONCENTRATION_FLOOR)).astype(np.float32))
    with tf.GradientTape() as tape:
        alpha = DirichletConcentration()(z)
    np.testing.assert_allclose(alpha.numpy(), 1.0, rtol=1e-6)
    assert tape.gradient(alpha, z).numpy() > 0.6


def test_zoobot_concentrations_map_logits_to_1_to_101():
    layer = DirichletConcentration(activation="sigmoid")
    logits = np.array([[0.0, 2.0, -3.0, 40.0]], dtype=np.float32)
    np.testing.assert_allclose(
        layer(logits).numpy(), 100.0 / (1.0 + np.exp(-logits)) + 1.0, rtol=1e-6
    )
    clone = DirichletConcentration.from_config(layer.get_config())
    assert clone.activation == "sigmoid" and (clone.scale, clone.offset) == (100.0, 1.0)
    with pytest.raises(ValueError, match="unknown concentration activation 'relu'"):
        DirichletConcentration(activation="relu")


@pytest.mark.parametrize("name", ["w20", "efficientnet"])
def test_mc_dropout_makes_repeated_predictions_differ(name, efficientnet):
    model = w20(seed=5) if name == "w20" else efficientnet
    x = images(2)  # one batch shape for every efficientnet predict(): one tf.function trace
    first = model.predict(x, verbose=0)
    second = model.predict(x, verbose=0)
    eager = model(x).numpy()  # no training flag: dropout must still be on
    assert not np.array_equal(first, second)
    assert not np.array_equal(second, eager)


def test_mc_dropout_layer_ignores_training_flag():
    keras.utils.set_random_seed(0)
    layer = MCDropout(0.5, seed=3)
    ones = np.ones((1, 1000), dtype=np.float32)
    for flag in (False, None, True):
        out = layer(ones, training=flag).numpy()
        # Inverted dropout: kept units are scaled by 1 / (1 - rate).
        assert set(np.unique(out)) == {0.0, 2.0}
        assert 400 < np.count_nonzero(out) < 600


def test_zero_dropout_predictions_identical(efficientnet_no_dropout):
    model = w20(dropout_rate=0.0)
    x = images(2)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    x3 = images(2, channels=3)
    # Eager calls: tracing EfficientNet for predict() is slow on CPU.
    np.testing.assert_array_equal(
        efficientnet_no_dropout(x3).numpy(), efficientnet_no_dropout(x3).numpy()
    )


def test_prediction_leaves_batchnorm_statistics_alone(efficientnet):
    norms = [
        layer
        for layer in efficientnet.get_layer("trunk").get_layer("features").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) > 10

    def statistics() -> list[np.ndarray]:
        return [v.numpy().copy() for n in norms for v in (n.moving_mean, n.moving_variance)]

    before = statistics()
    x = images(2)
    efficientnet.predict(x, verbose=0)
    efficientnet(x)
    trunk, head = split_trunk_head(efficientnet)
    head(trunk(x))
    for old, new in zip(before, statistics(), strict=True):
        np.testing.assert_array_equal(old, new)
    # The check can fail: a training step does move the statistics.
    efficientnet(x, training=True)
    assert any(not np.array_equal(o, n) for o, n in zip(before, statistics(), strict=True))


@pytest.mark.parametrize("name", ["w20", "efficientnet"])
def test_augmentation_only_while_training(name, efficientnet):
    model = w20(seed=6) if name == "w20" else efficientnet
    trunk, _ = split_trunk_head(model)
    x = images(2)
    reference = trunk(x).numpy()  # eager: tracing EfficientNet for predict() is slow on CPU
    np.testing.assert_array_equal(trunk(x).numpy(), reference)
    if name == "w20":
        np.testing.assert_allclose(trunk.predict(x, verbose=0), reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trunk(x, training=False).numpy(), reference, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trunk(x, training=True).numpy(), reference, rtol=1e-3, atol=1e-5)


def test_augmentation_layer_is_identity_at_inference_and_random_in_training():
    augmentation = GalaxyAugmentation(seed=4)
    x = images(3)
    for flag in (None, False):
        np.testing.assert_array_equal(augmentation(x, training=flag).numpy(), x)
    augmented = augmentation(x, training=True).numpy()
    assert augmented.shape == x.shape
    assert not np.allclose(augmented, x)
    # Rotation, flips and reflect padding only move pixels about: the value range stays put.
    assert augmented.min() >= x.min() - 1e-3 and augmented.max() <= x.max() + 1e-3
    config = augmentation.rotate.get_config()
    assert tuple(config["factor"]) == (-0.5, 0.5) and config["fill_mode"] == "reflect"
    assert augmentation.flip.get_config()["mode"] == "horizontal_and_vertical"
    assert augmentation.crop_fraction == 1.0  # no zoom: prediction sees the whole frame
    cropping = GalaxyAugmentation(crop_fraction=0.5, seed=4)
    zoomed = cropping(x, training=True).numpy()
    assert zoomed.shape == x.shape and cropping.crop.crop_fraction == 0.5
    np.testing.assert_array_equal(cropping(x, training=False).numpy(), x)


def test_shifts_zoom_and_brightness_keep_the_galaxy_and_survive_saving(tmp_path):
    x = images(4)
    for option in ({"shift": 0.1}, {"zoom": 0.15}, {"brightness": 0.1}):
        augmentation = GalaxyAugmentation(seed=3, **option)
        np.testing.assert_array_equal(augmentation(x, training=False).numpy(), x)
        plain = GalaxyAugmentation(seed=3)(x, training=True).numpy()
        out = augmentation(x, training=True).numpy()
        assert out.shape == x.shape and not np.allclose(out, plain)
        if "brightness" in option:  # a uniform offset within +-0.1 of the 0-255 range
            assert np.abs(out.mean() - plain.mean()) <= 0.1 * 255 + 1e-3
    with pytest.raises(ValueError, match="shift"):
        GalaxyAugmentation(shift=0.6)
    model = build_model(
        "compact_cnn",
        input_shape=(SIDE, SIDE, 3),
        head="dirichlet",
        n_answers=34,
        augmentation={"shift": 0.05, "zoom": 0.1, "brightness": 0.05},
        seed=1,
    )
    model.save(tmp_path / "compact.keras")
    reloaded = keras.models.load_model(tmp_path / "compact.keras")
    layer = split_trunk_head(reloaded)[0].get_layer("augmentation")
    assert (layer.shift, layer.zoom, layer.brightness) == (0.05, 0.1, 0.05)
    x3 = images(2, 3)
    no_dropout = split_trunk_head(reloaded)
    np.testing.assert_allclose(
        no_dropout[0](x3).numpy(), split_trunk_head(model)[0](x3).numpy(), rtol=1e-6
    )
    assert split_trunk_head(model)[0].output_shape == (None, 256)


def test_random_crop_picks_a_window_per_image_and_resizes_back():
    keras.utils.set_random_seed(0)
    width = 33
    ramp = np.tile(np.arange(width, dtype=np.float32), (width, 1))  # value = column index
    batch = np.repeat(ramp[None, :, :, None], 4, axis=0)
    crop = RandomCropResize(0.5, seed=9)
    np.testing.assert_array_equal(crop(batch).numpy(), batch)
    out = crop(batch, training=True).numpy()
    assert out.shape == batch.shape
    spans = out.max(axis=(1, 2, 3)) - out.min(axis=(1, 2, 3))
    # Half the side of a ramp of slope 1 spans (width - 1) / 2 column values.
    np.testing.assert_allclose(spans, (width - 1) * 0.5, rtol=1e-4)
    starts = out.min(axis=(1, 2, 3))
    assert np.all(starts >= 0) and np.all(starts <= (width - 1) * 0.5 + 1e-4)
    assert len(np.unique(np.round(starts, 3))) > 1  # independent windows


def test_model_rescales_uint8_input_itself():
    model = w20(dropout_rate=0.0)
    features = split_trunk_head(model)[0].get_layer("features")
    white = np.full((1, SIDE, SIDE, 1), 255.0, dtype=np.float32)
    np.testing.assert_allclose(features.get_layer("rescale")(white).numpy(), 1.0)
    as_uint8 = images(2).astype(np.uint8)
    np.testing.assert_array_equal(
        model.predict(as_uint8, verbose=0), model.predict(as_uint8.astype(np.float32), verbose=0)
    )


def test_split_trunk_head_composes_to_the_model(efficientnet_no_dropout):
    for model, x in ((w20(dropout_rate=0.0), images(2)), (efficientnet_no_dropout, images(2, 3))):
        trunk, head = split_trunk_head(model)
        assert trunk.output_shape == head.input_shape
        np.testing.assert_allclose(head(trunk(x)).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no 'trunk' and 'head'"):
        split_trunk_head(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))


def test_save_and_load_round_trip(tmp_path, efficientnet_no_dropout):
    for model, x in ((w20(dropout_rate=0.0), images(2)), (efficientnet_no_dropout, images(2, 3))):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        reloaded = keras.models.load_model(path)
        np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
        trunk, head = split_trunk_head(reloaded)
        assert isinstance(head.get_layer("mc_dropout"), MCDropout)
        assert isinstance(trunk.get_layer("augmentation"), GalaxyAugmentation)


def test_reloaded_model_keeps_mc_dropout(tmp_path):
    model = w20(seed=7)
    path = tmp_path / "w20.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = images(1)
    assert not np.array_equal(reloaded.predict(x, verbose=0), reloaded.predict(x, verbose=0))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", refuse)


def test_efficientnet_loads_local_weights_without_network(tmp_path, no_network):
    keras.utils.set_random_seed(8)
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(SIDE, SIDE, 1)
    )
    path = tmp_path / "backbone.weights.h5"
    backbone.save_weights(path)
    keras.utils.set_random_seed(9)
    model = build_model(
        "efficientnet_b0",
        input_shape=(SIDE, SIDE, 1),
        head="dirichlet",
        n_answers=34,
        weights_path=path,
    )
    features = split_trunk_head(model)[0].get_layer("features")
    loaded = features.get_weights()
    assert len(loaded) == len(backbone.get_weights())
    for expected, got in zip(backbone.get_weights(), loaded, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_w20_loads_local_weights(tmp_path, no_network):
    source = w20(seed=10)
    path = save_feature_weights(source, tmp_path / "features.weights.h5")
    target = w20(seed=11, weights_path=path)
    target_features = split_trunk_head(target)[0].get_layer("features")
    source_features = split_trunk_head(source)[0].get_layer("features")
    for expected, got in zip(
        source_features.get_weights(), target_features.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


def test_saved_feature_weights_need_the_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"trunk\.h5: .*\.weights\.h5"):
        save_feature_weights(w20(seed=10), tmp_path / "trunk.h5")


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        w20(weights_path=tmp_path / "absent.weights.h5")


def test_registry_and_bad_arguments():
    assert set(MODELS) == {"w20_cnn", "compact_cnn", "efficientnet_b0"}
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*efficientnet_b0.*w20_cnn"):
        build_model("resnet", input_shape=(SIDE, SIDE, 1), head="dirichlet", n_answers=34)
    with pytest.raises(ValueError, match=r"unknown head 'beta'"):
        build_model("w20_cnn", input_shape=(SIDE, SIDE, 1), head="beta", n_answers=34)
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        build_model("w20_cnn", input_shape=(SIDE, SIDE), head="dirichlet", n_answers=34)
    with pytest.raises(ValueError, match="at least 32 px"):
        build_model("efficientnet_b0", input_shape=(16, 16, 1), head="dirichlet", n_answers=34)


def test_default_and_overridden_dropout_rates():
    rate = split_trunk_head(w20())[1].get_layer("mc_dropout").rate
    assert rate == 0.5
    assert split_trunk_head(w20(dropout_rate=0.1))[1].get_layer("mc_dropout").rate == 0.1


def test_seed_makes_builds_reproducible():
    x = images(2)
    first = build_model(
        "w20_cnn", input_shape=(SIDE, SIDE, 1), head="dirichlet", n_answers=34, seed=12
    )
    second = build_model(
        "w20_cnn", input_shape=(SIDE, SIDE, 1), head="dirichlet", n_answers=34, seed=12
    )
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first(x).numpy(), second(x).numpy())
    other = build_model(
        "w20_cnn", input_shape=(SIDE, SIDE, 1), head="dirichlet", n_answers=34, seed=13
    )
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_w20_cnn_learns_votes_that_depend_on_the_image():
    """Bright-centred galaxies get mostly 'smooth' votes, faint ones 'featured': the CNN with the
    Dirichlet head must learn that, well past the best image-blind guess (63% here)."""
    from zooflow.losses import DirichletMultinomialLoss

    schema = load_schema("decals_dr5")
    rng = np.random.default_rng(0)
    n, side = 320, 16
    smooth = rng.uniform(size=n) < 0.37
    pixels = rng.normal(20.0, 6.0, size=(n, side, side, 1))
    pixels[smooth, 5:11, 5:11] += 120.0
    votes = np.zeros((n, schema.n_answers), np.float32)
    answers = schema.question("smooth-or-featured").indices
    for galaxy in range(n):
        p = (0.85, 0.12, 0.03) if smooth[galaxy] else (0.1, 0.87, 0.03)
        votes[galaxy, answers] = rng.multinomial(rng.choice([5, 10, 40]), p)
    model = build_model(
        "w20_cnn",
        input_shape=(side, side, 1),
        head="dirichlet",
        n_answers=schema.n_answers,
        dropout_rate=0.2,
        seed=0,
    )
    model.compile(keras.optimizers.Adam(1e-3), DirichletMultinomialLoss(schema))
    train, test = slice(0, 256), slice(256, n)
    model.fit(pixels[train].astype(np.float32), votes[train], epochs=25, batch_size=32, verbose=0)
    alpha = np.mean([model(pixels[test].astype(np.float32)).numpy() for _ in range(5)], axis=0)
    predicted_smooth = alpha[:, answers.start] > alpha[:, answers.start + 1]
    assert np.mean(predicted_smooth == smooth[test]) >= 0.95
