"""Training a Bayesian CNN on vote counts (W+20; Zoobot's Dirichlet-multinomial successor).

The tf.data pipeline reads TFRecord shards, optionally keeps only a given set of galaxy ids (the
labelled set of an active-learning round), and feeds (image, votes) batches. Training uses Adam,
early stopping on the validation loss and a best-model checkpoint, and can be killed and rerun:
BackupAndRestore resumes at the last finished epoch and the best checkpoint, its score and the
CSV log survive in a state folder next to the outputs until training completes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from zooflow.data import make_dataset, manifest_path, read_labels, shard_files
from zooflow.jsonfile import write_json
from zooflow.modelcard import write_schema_card
from zooflow.posteriors import HEADS
from zooflow.runlog import epoch_line, training_outcome
from zooflow.schema import Schema

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")
# In the state folder: the training job holds a lock on it (runlog.exclusive), kept by a fresh start.
STATE_LOCK = "lock"


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf: nothing trustworthy to save."""


@dataclass(frozen=True)
class TrainingConfig:
    """Tunables of one training run; field names are the keys of `train:` in the config.

    model: builder name (w20_cnn, efficientnet_b0); head: dirichlet (whole tree,
    Dirichlet-multinomial loss) or binomial (one answer, W+20's binomial loss on
    `binomial_answer`); dropout_rate: None keeps the builder's default; device: auto uses every GPU
    present (MirroredStrategy, mixed precision) and falls back to the CPU; deterministic: seeded,
    order-preserving input pipeline and deterministic TensorFlow ops.
    """

    model: str = "w20_cnn"
    head: str = "dirichlet"
    binomial_answer: str = "smooth-or-featured_smooth"
    batch_size: int = 64
    epochs: int = 20
    patience: int = 4
    learning_rate: float = 1e-3
    dropout_rate: float | None = None
    augment: bool = True
    augment_shift: float = 0.0
    augment_zoom: float = 0.0
    augment_brightness: float = 0.0
    freeze_trunk: bool = False
    warmup_epochs: int = 0
    lr_patience: int = 0
    lr_factor: float = 0.3
    weights_path: str = ""
    shuffle_buffer: int = 2048
    cache: bool = True
    device: str = "auto"
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"train.head must be one of {HEADS}, not {self.head!r}")
        if self.device not in DEVICES:
            raise ValueError(f"train.device must be one of {DEVICES}, not {self.device!r}")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1")
        if not 0.0 < self.lr_factor < 1.0:
            raise ValueError(f"train.lr_factor must be in (0, 1), not {self.lr_factor}")

    @property
    def augmentation(self) -> dict[str, float]:
        return {
            "shift": self.augment_shift,
            "zoom": self.augment_zoom,
            "brightness": self.augment_brightness,
        }


def configure_tensorflow(seed: int, deterministic: bool, device: str = "auto"):
    """Seed everything and choose the distribution strategy; returns the tf.distribute strategy.

    On GPU machines (`auto` with GPUs present, or `gpu`) training is mirrored over every GPU in
    mixed precision; on the CPU it runs in float32 with the default strategy.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise RuntimeError("train.device is 'gpu' but TensorFlow sees no GPU")
    if device == "cpu" or not gpus:
        keras.mixed_precision.set_global_policy("float32")
        return tf.distribute.get_strategy()
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.mixed_precision.set_global_policy("mixed_float16")
    log.info("training on %d GPU(s) with mixed precision", len(gpus))
    return tf.distribute.MirroredStrategy()


def _loss_and_metrics(config: TrainingConfig, schema: Schema):
    from zooflow.losses import build_loss, per_question_metrics

    if config.head == "dirichlet":
        return build_loss("dirichlet_multinomial", schema), per_question_metrics(schema)
    answer_index = schema.label_cols.index(config.binomial_answer)
    return build_loss("binomial", schema, answer_index=answer_index), []


def build_training_model(config: TrainingConfig, schema: Schema, input_shape, seed: int):
    """Model for the configured head; its output layer is float32 even in mixed precision."""
    from zooflow.models import build_model

    return build_model(
        config.model,
        input_shape=tuple(input_shape),
        head=config.head,
        n_answers=schema.n_answers,
        dropout_rate=config.dropout_rate,
        augment=config.augment,
        augmentation=config.augmentation,
        weights_path=config.weights_path or None,
        seed=seed,
    )


def _best_logged_val_loss(csv_log: Path) -> float | None:
    if not csv_log.exists() or csv_log.stat().st_size == 0:
        return None
    logged = pd.read_csv(csv_log)
    if "val_loss" not in logged or logged["val_loss"].dropna().empty:
        return None
    return float(logged["val_loss"].min())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def training_parameters(
    config: TrainingConfig,
    seed: int,
    labels: pd.DataFrame | None,
    train_manifests: Sequence[str | Path],
    val_manifests: Sequence[str | Path],
    *,
    initial_model: str | Path | None = None,
) -> dict:
    """Everything a training's result depends on: its settings, seed and data (as digests)."""
    training_set = (
        "every galaxy in the shards"
        if labels is None
        else _sha256(labels.sort_values("id_str").to_csv(index=False).encode())
    )
    return {
        **asdict(config),
        "seed": seed,
        "labelled set": training_set,
        "training shards": [_sha256(manifest_path(m).read_bytes()) for m in train_manifests],
        "validation shards": [_sha256(manifest_path(m).read_bytes()) for m in val_manifests],
        "initial model": None
        if initial_model is None
        else _sha256(Path(initial_model).read_bytes()),
        "pretrained weights": (
            _sha256(Path(config.weights_path).read_bytes()) if config.weights_path else None
        ),
    }


def _change(key: str, before: dict, after) -> str:
    """'epochs 40 -> 10'; digests and other long values by name only."""
    if key in before and max(len(repr(before[key])), len(repr(after))) < 30:
        return f"{key} {before[key]} -> {after}"
    return f"{key} changed"


def resume_only_if_unchanged(state_dir: Path, parameters: dict) -> None:
    """Keep a killed training's state only if it was written under the same ``parameters``.

    A state from other settings (more epochs, another learning rate, another labelled set) would
    mix two trainings in one history, so it is removed and the training starts afresh, saying
    which parameters changed. The parameters and their hash are stored with the state.
    """
    stamp = state_dir / "parameters.json"
    digest = _sha256(json.dumps(parameters, sort_keys=True, default=str).encode())
    kept = [p for p in state_dir.glob("*") if p.name != STATE_LOCK]
    if kept:
        try:
            recorded = json.loads(stamp.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("sha256") == digest:
            log.info("resuming the interrupted training kept in %s", state_dir)
        else:
            before = recorded.get("parameters", {})
            changed = [
                _change(k, before, parameters[k])
                for k in parameters
                if before.get(k) != parameters[k]
            ]
            detail = ", ".join(changed)
            log.warning(
                "%s was left by a training with other parameters (%s): starting afresh",
                state_dir,
                detail or "none recorded",
            )
            for path in kept:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
    state_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(
        json.dumps({"sha256": digest, "parameters": parameters}, indent=2, default=str)
    )


def train_model(
    train_manifests: Sequence[str | Path],
    val_manifests: Sequence[str | Path],
    schema: Schema,
    config: TrainingConfig,
    *,
    model_path: str | Path,
    history_path: str | Path,
    state_dir: str | Path,
    tensorboard_dir: str | Path | None = None,
    labels: pd.DataFrame | str | Path | None = None,
    initial_model: str | Path | None = None,
    seed: int = 0,
    extra_callbacks: Sequence = (),
) -> pd.DataFrame:
    """Train, keep the best model by validation loss, and return the per-epoch history.

    ``labels`` (id_str + votes) is the training set; None trains on every galaxy in the shards
    with the shards' votes. ``initial_model`` warm-starts from a saved model's weights.
    ``state_dir`` holds what a killed run needs to resume (BackupAndRestore files, the best
    checkpoint, the CSV log); it is removed once training completes and the outputs are written.
    """
    model_path, history_path, state_dir = Path(model_path), Path(history_path), Path(state_dir)
    labels = None if labels is None else read_labels(labels, schema)
    resume_only_if_unchanged(
        state_dir,
        training_parameters(
            config, seed, labels, train_manifests, val_manifests, initial_model=initial_model
        ),
    )
    strategy = configure_tensorflow(seed, config.deterministic, config.device)
    n_gpus = max(strategy.num_replicas_in_sync, 1)
    batch_size = config.batch_size * n_gpus

    train = make_dataset(
        train_manifests,
        schema,
        batch_size=batch_size,
        labels=labels,
        shuffle=True,
        shuffle_buffer=config.shuffle_buffer,
        seed=seed,
        cache=config.cache,
        deterministic=config.deterministic,
    )
    val = make_dataset(val_manifests, schema, batch_size=batch_size, cache=config.cache)
    # make_dataset above already verified these shards' checksums; only the shape is needed.
    _, image_shape = shard_files(train_manifests, verify_checksums=False)
    n_train = _count_examples(train_manifests, labels)
    if n_train == 0:
        raise ValueError("no galaxies to train on: the training set is empty")
    log.info(
        "training %s/%s on %d galaxies, image %s", config.model, config.head, n_train, image_shape
    )

    with strategy.scope():
        model = build_training_model(config, schema, image_shape, seed)
        if initial_model is not None:
            # Warm start: continue from the previous round's weights rather than from scratch.
            from zooflow.models import load_model

            model.set_weights(load_model(initial_model).get_weights())
            log.info("warm start from %s", initial_model)
        loss, metrics = _loss_and_metrics(config, schema)
        fitted = model
        if config.freeze_trunk:
            if not config.weights_path and initial_model is None:
                raise ValueError(
                    "train.freeze_trunk keeps the feature extractor as it starts: give it "
                    "trained features with train.weights_path (or warm-started rounds)"
                )
            from zooflow.models import split_trunk_head

            trunk, fitted = split_trunk_head(model)
            train = features_dataset(trunk, train, batch_size, seed, shuffle=True)
            val = features_dataset(trunk, val, batch_size, seed, shuffle=False)
            log.info("trunk frozen: training the head on its features, computed once")
        fitted.compile(
            optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
            loss=loss,
            metrics=metrics,
        )

    best_path = state_dir / "best.keras"
    csv_log = state_dir / "history.csv"
    best_so_far = _best_logged_val_loss(csv_log)
    checkpoint = keras.callbacks.ModelCheckpoint(
        best_path,
        monitor="val_loss",
        save_best_only=True,
        initial_value_threshold=best_so_far,
    )
    nan_guard = _NaNGuard()
    callbacks = [
        keras.callbacks.BackupAndRestore(str(state_dir / "backup"), delete_checkpoint=True),
        _EpochLog(config.epochs),
        nan_guard,
        *learning_rate_schedule(config),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
        checkpoint,
        keras.callbacks.CSVLogger(str(csv_log), append=True),
        *extra_callbacks,
    ]
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False))

    fitted.fit(
        train,
        validation_data=val,
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,
        verbose=0,  # _EpochLog writes one line per epoch instead
    )

    history = pd.read_csv(csv_log)
    if nan_guard.diverged or not np.isfinite(history["loss"].to_numpy()).all():
        raise TrainingDiverged(
            f"training loss became NaN or infinite (see {csv_log}); refusing to save the model. "
            "Try a lower train.learning_rate."
        )
    if not best_path.exists():
        raise TrainingDiverged(f"no finite validation loss in {csv_log}; nothing to save")
    log.info(training_outcome(history["val_loss"].tolist(), config.epochs, config.patience))
    model_path.parent.mkdir(parents=True, exist_ok=True)
    if fitted is model:
        shutil.copyfile(best_path, model_path)
    else:  # the best head, back on its frozen trunk
        fitted.set_weights(keras.models.load_model(best_path, compile=False).get_weights())
        model.save(model_path)
    # What the model expects travels with it, for prediction-only runs (zooflow.modelcard).
    write_schema_card(model_path, schema, head=config.head)
    history.to_csv(history_path, index=False)
    write_json(
        model_path.parent / "training_config.json",
        {**asdict(config), "seed": seed, "n_train": n_train},
    )
    shutil.rmtree(state_dir, ignore_errors=True)
    return history


def features_dataset(trunk, dataset, batch_size: int, seed: int, *, shuffle: bool):
    """(features, votes) batches: the frozen trunk run once over ``dataset``'s images (no
    augmentation), so each epoch costs only the head."""
    features, votes = [], []
    for images, batch_votes in dataset:
        features.append(trunk(images, training=False).numpy())
        votes.append(batch_votes.numpy())
    cached = tf.data.Dataset.from_tensor_slices((np.concatenate(features), np.concatenate(votes)))
    if shuffle:
        cached = cached.shuffle(
            sum(len(v) for v in votes), seed=seed, reshuffle_each_iteration=True
        )
    return cached.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class WarmUp(keras.callbacks.Callback):
    """Raise the learning rate linearly to its target over the first ``epochs`` epochs.

    Adam's early steps on a freshly initialised network are its largest; a short ramp keeps
    them from throwing the concentrations into the flat region they then take epochs to leave.
    Leaves the rate alone afterwards, so a plateau schedule can lower it.
    """

    def __init__(self, epochs: int, target: float) -> None:
        super().__init__()
        self.epochs, self.target = int(epochs), float(target)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if epoch <= self.epochs:
            rate = self.target * min(1.0, (epoch + 1) / (self.epochs + 1))
            self.model.optimizer.learning_rate.assign(rate)


def learning_rate_schedule(config: TrainingConfig) -> list[keras.callbacks.Callback]:
    """Warm-up over ``warmup_epochs``, then the rate times ``lr_factor`` whenever the validation
    loss has not improved for ``lr_patience`` epochs (down to 1/100 of the start); early
    stopping (``patience``, longer) then ends training, not the epoch cap."""
    callbacks: list[keras.callbacks.Callback] = []
    if config.warmup_epochs > 0:
        callbacks.append(WarmUp(config.warmup_epochs, config.learning_rate))
    if config.lr_patience > 0:
        callbacks.append(
            _LoggedPlateau(
                after_warmup=config.warmup_epochs,
                monitor="val_loss",
                factor=config.lr_factor,
                patience=config.lr_patience,
                min_lr=config.learning_rate / 100,
            )
        )
    return callbacks


class _LoggedPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that says so in the job's log, in the same shape as the epoch lines
    (Keras' own message is a bare print with a blank line and float32 digits), and that waits
    for the warm-up to end: a drop during the ramp would be undone by the next warm-up step."""

    def __init__(self, after_warmup: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.after_warmup = int(after_warmup)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.after_warmup:
            # Still report the rate, so history.csv (whose columns the first epoch fixes) keeps it.
            if logs is not None:
                logs["learning_rate"] = float(
                    keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
                )
            return
        before = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        super().on_epoch_end(epoch, logs)
        after = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if after < before:
            log.info(
                "epoch %d: learning rate lowered to %.3g (val_loss had not improved for %d "
                "epochs, train.lr_patience)",
                epoch + 1,
                after,
                self.patience,
            )


class _EpochLog(keras.callbacks.Callback):
    """One log line per epoch, its losses and time (Keras' own progress output is off)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        log.info(epoch_line(epoch, self.epochs, logs or {}, time.monotonic() - self.started))


class _NaNGuard(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers it fired, so the step can fail instead of saving garbage."""

    diverged = False

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.diverged = True
        super().on_batch_end(batch, logs)


def _count_examples(manifests: Sequence[str | Path], labels: pd.DataFrame | None) -> int:
    if labels is not None:
        return len(labels)
    return sum(json.loads(manifest_path(m).read_text())["count"] for m in manifests)


def export_feature_weights(model_path: str | Path, weights_path: str | Path) -> Path:
    """Save a trained model's feature extractor for ``train.weights_path`` of another run.

    The way to start a new survey's rounds from a model trained on an earlier one: only the
    ``features`` sub-model carries over (see :func:`zooflow.models.save_feature_weights`).
    """
    from zooflow.models import load_model, save_feature_weights

    path = save_feature_weights(load_model(model_path), weights_path)
    log.info("feature extractor of %s saved to %s", model_path, path)
    return path
