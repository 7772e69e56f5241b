"""Keras 3 networks that map galaxy images to vote-likelihood parameters, chosen by name.

Every model is ``head(trunk(image))``, two named sub-models:

* ``trunk``: augmentation (training only) and the feature extractor (a sub-model named
  ``features``), ending in a feature vector;
* ``head``: :class:`MCDropout` (dropout that stays on at prediction) + Dense + output activation,
  either Dirichlet concentrations α = softplus(z) + 0.01 per answer (see
  :class:`DirichletConcentration` for why not Zoobot's 100·sigmoid(z) + 1) or a binomial
  probability ρ = sigmoid(z) (W+20).

Monte Carlo dropout then needs the trunk only once per batch: ``trunk, head =
split_trunk_head(model)`` and sample the head T times on the features (:mod:`zooflow.predict`
applies one dropout mask per pass, shared by every galaxy, via :func:`split_head_dropout`).
BatchNormalization stays in inference mode whenever ``training`` is not True.

Images go in as raw uint8-range values (cast to float); rescaling to [0, 1] happens inside.
Nothing is ever downloaded: EfficientNetB0 is built with ``weights=None`` unless a local file
is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from zooflow.posteriors import HEADS

CONCENTRATION_ACTIVATIONS = ("softplus", "sigmoid")
# softplus: α = softplus(z) + floor. The floor keeps α > 0 (lgamma's pole) without a bound
# where gradients vanish; 0.01 lets a question's predictive be as spread out as votes ever are.
CONCENTRATION_FLOOR = 0.01
# sigmoid (Zoobot's): α = sigmoid(z) * 100 + 1.
CONCENTRATION_SCALE = 100.0
CONCENTRATION_OFFSET = 1.0
# Random crops (then resized back) are off by default: prediction sees the whole frame, so a
# training-only zoom teaches features at the wrong scale. On the default mock survey a 0.75 crop
# cut smooth-or-featured accuracy from 89% to 77% after 30 epochs (rotation and flips kept).
CROP_FRACTION = 1.0


# --- custom layers -----------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="zooflow")
class MCDropout(keras.layers.Dropout):
    """Dropout that is applied whatever the ``training`` flag says (Monte Carlo dropout)."""

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return super().call(inputs, training=True)


@keras.saving.register_keras_serializable(package="zooflow")
class DirichletConcentration(keras.layers.Layer):
    """Logits z -> Dirichlet concentrations α > 0.

    ``activation="softplus"`` (default): α = softplus(z) + ``floor``. ``"sigmoid"``: Zoobot's
    α = sigmoid(z) · ``scale`` + ``offset`` ∈ (offset, offset + scale), kept for models that
    must match Zoobot's range.

    Why not Zoobot's by default: with α ≥ 1 the "don't know" answer (α = 1 for every answer,
    uniform over the simplex) lies on the boundary, reached only as z → −∞ where the sigmoid's
    gradient vanishes. Early in training every question's best move is towards "don't know",
    so on small surveys the logits ran off to −∞ and the network stopped learning for good:
    on the default mock survey W+20's CNN stayed at 63% smooth-or-featured accuracy (the
    majority class) whatever the epochs, learning rate or clipping, and reached 90% once the
    floor moved to 0.01 (uniform at z ≈ 0.54, with full gradient).
    """

    def __init__(
        self,
        activation: str = "softplus",
        floor: float = CONCENTRATION_FLOOR,
        scale: float = CONCENTRATION_SCALE,
        offset: float = CONCENTRATION_OFFSET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if activation not in CONCENTRATION_ACTIVATIONS:
            raise ValueError(
                f"unknown concentration activation {activation!r}; "
                f"choose one of {CONCENTRATION_ACTIVATIONS}"
            )
        if not floor > 0.0:
            raise ValueError(f"the concentration floor must be positive, got {floor}")
        self.activation = activation
        self.floor = float(floor)
        self.scale = float(scale)
        self.offset = float(offset)

    def call(self, logits: Any) -> Any:
        if self.activation == "sigmoid":
            return keras.ops.sigmoid(logits) * self.scale + self.offset
        return keras.ops.softplus(logits) + self.floor

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Sequence[int | None]:
        return input_shape

    def logits_for(self, concentrations: np.ndarray) -> np.ndarray:
        """The logits this layer turns into ``concentrations`` (clipped into its range)."""
        alpha = np.asarray(concentrations, dtype=np.float64)
        if self.activation == "sigmoid":
            unit = np.clip((alpha - self.offset) / self.scale, 1e-6, 1 - 1e-6)
            return np.log(unit) - np.log1p(-unit)
        excess = np.maximum(alpha - self.floor, 1e-6)
        return excess + np.log(-np.expm1(-excess))  # softplus⁻¹, finite for large α too

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "activation": self.activation,
            "floor": self.floor,
            "scale": self.scale,
            "offset": self.offset,
        }


@keras.saving.register_keras_serializable(package="zooflow")
class RandomCropResize(keras.layers.Layer):
    """While training, crop a random square-fraction window per image and resize it back.

    The window is ``crop_fraction`` of the height and width, placed uniformly at random
    independently for every image (Keras' ``RandomCrop`` uses one window per batch and
    down-samples at inference); bilinear resampling back to the input size. Identity unless
    ``training`` is True.
    """

    def __init__(
        self, crop_fraction: float = CROP_FRACTION, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.crop_fraction = float(crop_fraction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_jit = False  # XLA has no CropAndResize kernel

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        batch = tf.shape(images)[0]
        # Corners in normalised [0, 1] coordinates, as tf.image.crop_and_resize expects.
        corners = keras.random.uniform(
            (batch, 2), 0.0, 1.0 - self.crop_fraction, seed=self.seed_generator
        )
        boxes = tf.concat([corners, corners + self.crop_fraction], axis=1)
        cropped = tf.image.crop_and_resize(
            tf.cast(images, tf.float32), boxes, tf.range(batch), (height, width)
        )
        return tf.cast(cropped, self.compute_dtype)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Sequence[int | None]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "crop_fraction": self.crop_fraction, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zooflow")
class GalaxyAugmentation(keras.layers.Layer):
    """What a volunteer would still call the same galaxy: rotation over the full circle (reflect
    fill), horizontal and vertical flips, and optionally small shifts (``shift``, a fraction of
    the side), zoom (``zoom``: scale by up to ±zoom) and brightness (``brightness``: add up to
    ±brightness of the 0-255 range). ``crop_fraction`` < 1 adds a random crop resized back (off
    by default, see ``CROP_FRACTION``).

    Applied only when ``training`` is True. Keras' random image layers augment when called
    with no training flag at all (``model(x)``); wrapping them here makes "no flag" mean
    inference, as for Dropout and BatchNormalization.

    Neither Keras' RandomRotation nor the crop compiles with XLA, so Keras trains models that
    contain this layer with ``jit_compile=False``; build with ``augment=False`` (and augment in
    tf.data) where XLA matters.
    """

    def __init__(
        self,
        crop_fraction: float = CROP_FRACTION,
        seed: int | None = None,
        shift: float = 0.0,
        zoom: float = 0.0,
        brightness: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("shift", shift), ("zoom", zoom), ("brightness", brightness)):
            if not 0.0 <= value < 0.5:
                raise ValueError(f"augmentation {name} must be in [0, 0.5), got {value}")
        self.crop_fraction = float(crop_fraction)
        self.seed = seed
        self.shift, self.zoom, self.brightness = float(shift), float(zoom), float(brightness)
        self.supports_jit = False

        def sub_seed(offset: int) -> int | None:
            return None if seed is None else seed + offset

        # factor 0.5 of a full turn either way = any angle.
        self.rotate = keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=sub_seed(0))
        self.flip = keras.layers.RandomFlip("horizontal_and_vertical", seed=sub_seed(1))
        self.crop = RandomCropResize(crop_fraction, seed=sub_seed(2))
        self.translate = keras.layers.RandomTranslation(
            self.shift, self.shift, fill_mode="reflect", seed=sub_seed(3)
        )
        self.rescale = keras.layers.RandomZoom(
            (-self.zoom, self.zoom), fill_mode="reflect", seed=sub_seed(4)
        )
        self.lighten = keras.layers.RandomBrightness(
            self.brightness, value_range=(0, 255), seed=sub_seed(5)
        )

    def _active(self) -> list[keras.layers.Layer]:
        layers = [self.rotate, self.flip]
        if self.shift > 0:
            layers.append(self.translate)
        if self.zoom > 0:
            layers.append(self.rescale)
        if self.crop_fraction < 1.0:
            layers.append(self.crop)
        if self.brightness > 0:
            layers.append(self.lighten)
        return layers

    def build(self, input_shape: Sequence[int | None]) -> None:
        for layer in self._active():
            layer.build(input_shape)
        super().build(input_shape)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        for layer in self._active():
            images = layer(images, training=True)
        return images

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Sequence[int | None]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "crop_fraction": self.crop_fraction,
            "seed": self.seed,
            "shift": self.shift,
            "zoom": self.zoom,
            "brightness": self.brightness,
        }


# --- building blocks ---------------------------------------------------------------------------
def _check_input_shape(input_shape: Sequence[int], min_side: int, model: str) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(
            f"{model}: input_shape must be (height, width, channels) positive integers, "
            f"got {input_shape!r}"
        )
    if min(shape[:2]) < min_side:
        raise ValueError(f"{model}: images must be at least {min_side} px a side, got {shape}")
    return shape


def build_head(
    feature_dim: int,
    head: str,
    n_answers: int,
    dropout_rate: float,
    seed: int | None = None,
) -> keras.Model:
    """Head sub-model: MCDropout(rate) → Dense → α (n_answers, see :class:`DirichletConcentration`)
    or ρ = sigmoid (1).

    The output layers compute in float32 so mixed-precision training keeps the likelihood stable.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    features = keras.Input((feature_dim,), name="features")
    x = MCDropout(dropout_rate, seed=seed, name="mc_dropout")(features)
    if head == "dirichlet":
        if n_answers < 2:
            raise ValueError(f"a Dirichlet head needs at least 2 answers, got {n_answers}")
        logits = keras.layers.Dense(n_answers, name="logits")(x)
        outputs = DirichletConcentration(name="concentrations", dtype="float32")(logits)
    else:
        logits = keras.layers.Dense(1, name="logits")(x)
        outputs = keras.layers.Activation("sigmoid", name="probability", dtype="float32")(logits)
    return keras.Model(features, outputs, name="head")


def _build_trunk(
    input_shape: tuple[int, ...],
    features: keras.Model,
    augment: bool,
    seed: int | None,
    augmentation: dict[str, float] | None = None,
) -> keras.Model:
    images = keras.Input(input_shape, name="image")
    x = images
    if augment:
        x = GalaxyAugmentation(seed=seed, name="augmentation", **(augmentation or {}))(images)
    return keras.Model(images, features(x), name="trunk")


def compose(
    trunk: keras.Model, head: keras.Model, input_shape: tuple[int, ...], name: str
) -> keras.Model:
    images = keras.Input(input_shape, name="image")
    return keras.Model(images, head(trunk(images)), name=name)


def _local_weights(weights_path: str | Path | None) -> str | None:
    if weights_path is None:
        return None
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (nothing is downloaded)")
    return str(path)


def split_trunk_head(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The ``trunk`` and ``head`` sub-models of a model built here; ``head(trunk(x)) == model(x)``."""
    try:
        return model.get_layer("trunk"), model.get_layer("head")
    except ValueError as err:
        names = [layer.name for layer in model.layers]
        raise ValueError(
            f"model {model.name!r} has no 'trunk' and 'head' sub-models (layers: {names}); "
            "build it with zooflow.models.build_model"
        ) from err


def split_head_dropout(head: keras.Model) -> tuple[float, keras.Model]:
    """The head's dropout rate and the rest of the head after its :class:`MCDropout`.

    Lets prediction apply its own dropout masks, one per pass shared by every galaxy, so that
    pass t is the same network everywhere (see :mod:`zooflow.predict`). The returned model
    shares the head's layers and weights.
    """
    layers = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    dropout = [i for i, layer in enumerate(layers) if isinstance(layer, MCDropout)]
    if len(dropout) != 1:
        raise ValueError(f"head {head.name!r} must hold exactly one MCDropout layer")
    features = keras.Input(tuple(head.inputs[0].shape[1:]), name="dropped_features")
    x = features
    for layer in layers[dropout[0] + 1 :]:
        x = layer(x)
    return float(layers[dropout[0]].rate), keras.Model(features, x, name="head_after_dropout")


def save_feature_weights(model: keras.Model, path: str | Path) -> Path:
    """Write the ``features`` sub-model's weights, which ``build_model(weights_path=...)`` loads.

    How a model trained on one survey (or a separate mock survey) becomes the starting point of
    another's: the feature extractor carries over, augmentation has no weights and the head is
    retrained for the new labels. Keras names the file format by its ``.weights.h5`` suffix.
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"{path}: Keras weights files must end in .weights.h5")
    trunk, _ = split_trunk_head(model)
    trunk.get_layer("features").save_weights(path)
    return path


# --- architectures -----------------------------------------------------------------------------
def build_w20_cnn(
    *,
    input_shape: Sequence[int],
    head: str,
    n_answers: int,
    dropout_rate: float = 0.5,
    augment: bool = True,
    augmentation: dict[str, float] | None = None,
    weights_path: str | Path | None = None,
    seed: int | None = None,
) -> keras.Model:
    """The W+20 CNN: conv32 conv32 pool, conv64 conv64 pool, conv128 pool, conv128 pool, flatten,
    dense128 (3×3 'same' ReLU convolutions, 2×2 max-pooling), then the head (dropout 0.5).

    ``weights_path``: a Keras weights file of the ``features`` sub-model (same input shape),
    e.g. written by :func:`save_feature_weights`.
    """
    shape = _check_input_shape(input_shape, 16, "w20_cnn")
    if seed is not None:
        keras.utils.set_random_seed(seed)

    def conv(filters: int, name: str) -> keras.layers.Layer:
        return keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)

    features = keras.Sequential(
        [
            keras.Input(shape, name="image"),
            keras.layers.Rescaling(1.0 / 255.0, name="rescale"),
            conv(32, "conv1a"),
            conv(32, "conv1b"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            conv(64, "conv2a"),
            conv(64, "conv2b"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            conv(128, "conv3"),
            keras.layers.MaxPooling2D(2, name="pool3"),
            conv(128, "conv4"),
            keras.layers.MaxPooling2D(2, name="pool4"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense"),
        ],
        name="features",
    )
    _load_local_weights(features, weights_path, shape, "w20_cnn")
    trunk = _build_trunk(shape, features, augment, seed, augmentation)
    head_model = build_head(128, head, n_answers, dropout_rate, seed)
    return compose(trunk, head_model, shape, "w20_cnn")


def _load_local_weights(features: keras.Model, weights_path, shape, model: str) -> None:
    local = _local_weights(weights_path)
    if local is None:
        return
    try:
        features.load_weights(local)
    except ValueError as err:
        raise ValueError(
            f"{local}: not weights of a {model} feature extractor for input {shape}: {err}"
        ) from err


def build_compact_cnn(
    *,
    input_shape: Sequence[int],
    head: str,
    n_answers: int,
    dropout_rate: float = 0.2,
    augment: bool = True,
    augmentation: dict[str, float] | None = None,
    weights_path: str | Path | None = None,
    seed: int | None = None,
    widths: Sequence[int] = (32, 64, 128, 256),
) -> keras.Model:
    """A small modern CNN for 32-64 px cutouts: per width, two 3×3 convolutions with batch
    normalisation and ReLU, then 2×2 max-pooling (the last width: one convolution and no
    pooling), global average pooling, then the head.

    Against W+20's CNN: batch normalisation trains faster and more stably from few galaxies, and
    global average pooling (instead of flatten + dense) keeps the features translation-tolerant
    with far fewer weights.
    """
    shape = _check_input_shape(input_shape, 16, "compact_cnn")
    if seed is not None:
        keras.utils.set_random_seed(seed)

    def conv_bn(filters: int, name: str) -> list[keras.layers.Layer]:
        return [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name),
            keras.layers.BatchNormalization(name=f"{name}_bn"),
            keras.layers.Activation("relu", name=f"{name}_relu"),
        ]

    layers: list[keras.layers.Layer] = [
        keras.Input(shape, name="image"),
        keras.layers.Rescaling(1.0 / 255.0, name="rescale"),
    ]
    for block, width in enumerate(widths[:-1], start=1):
        layers += conv_bn(width, f"conv{block}a") + conv_bn(width, f"conv{block}b")
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{block}"))
    layers += conv_bn(widths[-1], f"conv{len(widths)}")
    layers.append(keras.layers.GlobalAveragePooling2D(name="pool"))
    features = keras.Sequential(layers, name="features")
    _load_local_weights(features, weights_path, shape, "compact_cnn")
    trunk = _build_trunk(shape, features, augment, seed, augmentation)
    head_model = build_head(widths[-1], head, n_answers, dropout_rate, seed)
    return compose(trunk, head_model, shape, "compact_cnn")


def build_efficientnet_b0(
    *,
    input_shape: Sequence[int],
    head: str,
    n_answers: int,
    dropout_rate: float = 0.2,
    augment: bool = True,
    augmentation: dict[str, float] | None = None,
    weights_path: str | Path | None = None,
    seed: int | None = None,
) -> keras.Model:
    """EfficientNetB0 without its classifier, global average pooling, then the head (dropout 0.2).

    Built with ``keras.applications.EfficientNetB0(weights=None, include_top=False)``, which
    rescales by 1/255 itself (then applies an identity Normalization). ``weights_path`` is
    passed on as its ``weights`` argument: a local backbone weights file, e.g. Keras' ImageNet
    ``efficientnetb0_notop.h5`` for 3-channel input, or one saved from this backbone by
    :func:`save_feature_weights`.
    """
    shape = _check_input_shape(input_shape, 32, "efficientnet_b0")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    local = _local_weights(weights_path)
    try:
        features = keras.applications.EfficientNetB0(
            include_top=False,
            weights=local,
            input_shape=shape,
            pooling="avg",
            name="features",
        )
    except ValueError as err:
        if local is None:
            raise
        raise ValueError(
            f"{local}: not weights of an EfficientNetB0 backbone for input {shape}: {err}"
        ) from err
    trunk = _build_trunk(shape, features, augment, seed, augmentation)
    head_model = build_head(features.output_shape[-1], head, n_answers, dropout_rate, seed)
    return compose(trunk, head_model, shape, "efficientnet_b0")


MODELS: dict[str, Callable[..., keras.Model]] = {
    "w20_cnn": build_w20_cnn,
    "compact_cnn": build_compact_cnn,
    "efficientnet_b0": build_efficientnet_b0,
}


def build_model(
    name: str,
    *,
    input_shape: Sequence[int],
    head: str,
    n_answers: int,
    dropout_rate: float | None = None,
    augment: bool = True,
    augmentation: dict[str, float] | None = None,
    weights_path: str | Path | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Build the architecture ``name`` from :data:`MODELS`.

    ``head``: ``"dirichlet"`` (``n_answers`` concentrations) or ``"binomial"`` (one probability;
    ``n_answers`` is then ignored). ``dropout_rate=None`` keeps the architecture's default.
    ``seed``, if given, calls ``keras.utils.set_random_seed(seed)`` (Python, NumPy and
    TensorFlow global seeds) so initial weights are reproducible, and seeds the augmentation
    and dropout layers.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    options: dict[str, Any] = {}
    if dropout_rate is not None:
        options["dropout_rate"] = dropout_rate
    return MODELS[name](
        input_shape=input_shape,
        head=head,
        n_answers=n_answers,
        augment=augment,
        augmentation=augmentation,
        weights_path=weights_path,
        seed=seed,
        **options,
    )


def load_model(path: str | Path) -> keras.Model:
    """A trained zooflow model (its custom layers are registered by this module, its losses by
    :mod:`zooflow.losses`); not compiled, as prediction and fine-tuning compile their own."""
    import zooflow.losses  # noqa: F401  (registers serialisable losses)

    return keras.models.load_model(path, compile=False)


def head_of(model: keras.Model) -> str:
    """The head a built or loaded model has: one output is W+20's binomial probability; a
    Dirichlet head has one concentration per answer of the tree (at least two)."""
    return "binomial" if int(model.output.shape[-1]) == 1 else "dirichlet"
