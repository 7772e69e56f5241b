"""A new question learned from a few hundred labels, on the network a run already trained.

A trained network's trunk has learned what the survey's galaxies look like; a question it was
never taught (a ring, a merger, a new campaign's answer) mostly needs a new head on those
features. :func:`finetune_network` takes a trained model (any tree), drops its head, puts a
Dirichlet head for the new tree on its trunk, and trains:

1. the new head alone, trunk frozen: the trunk's features are computed once per galaxy (no
   augmentation), so each epoch costs only the head;
2. optionally (``unfreeze_layers`` > 0) the trunk's last layers that hold weights too, on the
   images with the training augmentation, at ``unfreeze_learning_rate`` (lower, so the little
   data does not wash out what the trunk knew).

The new head starts at the best constant prediction (``head_init: prior``, see
:func:`start_at_prior`). Each phase stops early on the validation loss and keeps its best
weights. ``from_scratch`` trains the same architecture, head started the same way, from random
weights on the same labels instead: the baseline that says what the reuse is worth
(``benchmarks/finetune.py``).

The labels are the new tree's votes (a catalogue ingested with that tree); the images are the
workflow's shards, whatever tree they were written for. Galaxies are drawn for training at
random (``seed``) from the galaxies of the training splits that have at least one vote on the
new tree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from zooflow.data import make_dataset, shard_files
from zooflow.jsonfile import write_json
from zooflow.modelcard import write_schema_card
from zooflow.models import (
    build_head,
    compose,
    load_model,
    split_head_dropout,
    split_trunk_head,
)
from zooflow.schema import Schema

log = logging.getLogger(__name__)

HEAD_INITS = ("prior", "random")
# A prior-initialised head's weights are Keras' draws times this: small enough that the first
# predictions are the prior's whatever the features, not zero, so every weight gets a gradient.
PRIOR_KERNEL_SCALE = 0.1


@dataclass(frozen=True)
class FineTuneConfig:
    """Tunables of a fine-tuning; field names are the keys of ``finetune:`` in the config."""

    labels: int = 300
    epochs: int = 200
    patience: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    head_init: str = "prior"
    unfreeze_layers: int = 0
    unfreeze_epochs: int = 100
    unfreeze_learning_rate: float = 1e-4
    from_scratch: bool = False

    def __post_init__(self) -> None:
        for name in ("labels", "epochs", "patience", "batch_size", "unfreeze_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"finetune.{name} must be at least 1, got {getattr(self, name)}")
        if self.unfreeze_layers < 0:
            raise ValueError(f"finetune.unfreeze_layers must be >= 0, got {self.unfreeze_layers}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(
                f"finetune.head_init must be one of {HEAD_INITS}, got {self.head_init!r}"
            )


def voted_on(catalogue: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Rows of ``catalogue`` with at least one vote on ``schema``'s questions: id + vote columns."""
    missing = [c for c in ["id_str", *schema.label_cols] if c not in catalogue.columns]
    if missing:
        raise ValueError(f"the catalogue has no columns {missing[:5]} of tree {schema.name!r}")
    votes = catalogue[schema.label_cols].to_numpy(np.float64)
    return catalogue.loc[votes.sum(axis=1) > 0, ["id_str", *schema.label_cols]].reset_index(
        drop=True
    )


def choose_labels(
    catalogue: pd.DataFrame,
    splits: pd.DataFrame,
    schema: Schema,
    *,
    n: int,
    seed: int,
    from_splits: Sequence[str] = ("initial", "pool"),
) -> pd.DataFrame:
    """``n`` galaxies of ``from_splits`` with votes on the new tree, drawn at random with
    ``seed`` (the same seed gives the same galaxies, and the first n of a larger draw)."""
    candidates = voted_on(catalogue, schema)
    in_splits = set(splits.loc[splits["split"].isin(from_splits), "id_str"])
    candidates = candidates[candidates["id_str"].isin(in_splits)].sort_values("id_str")
    if len(candidates) < n:
        raise ValueError(
            f"finetune.labels = {n}, but only {len(candidates)} galaxies of the "
            f"{'/'.join(from_splits)} splits have votes on tree {schema.name!r}"
        )
    order = np.random.default_rng(seed).permutation(len(candidates))
    return candidates.iloc[order[:n]].reset_index(drop=True)


def split_labels(
    catalogue: pd.DataFrame, splits: pd.DataFrame, schema: Schema, split: str
) -> pd.DataFrame:
    """Every galaxy of ``split`` with votes on the new tree."""
    voted = voted_on(catalogue, schema)
    return voted[voted["id_str"].isin(set(splits.loc[splits["split"] == split, "id_str"]))]


def start_at_prior(head: keras.Model, prior: np.ndarray) -> None:
    """Set a Dirichlet head so that its first predictions are ``prior``'s concentrations.

    With 100 labels a randomly initialised head starts far from the labels' average and, stopped
    early on a noisy validation loss, often ends worse than predicting that average for every
    galaxy (merger question of benchmarks/finetune.py: test NLL 3.26 nats against the constant's
    3.21, three seeds). Started at the best constant, it moves only where the images help.
    """
    dense = head.get_layer("logits")
    kernel, _ = dense.get_weights()
    bias = head.get_layer("concentrations").logits_for(prior)
    dense.set_weights([kernel * PRIOR_KERNEL_SCALE, bias.astype(kernel.dtype)])


def _new_network(
    base: keras.Model, schema: Schema, from_scratch: bool, seed: int, prior: np.ndarray | None
):
    """(model, trunk, head): the base's trunk (or a freshly initialised copy) under a new
    Dirichlet head with ``schema``'s answers and the base head's dropout rate, started at
    ``prior``'s concentrations when given."""
    trunk, old_head = split_trunk_head(base)
    rate, _ = split_head_dropout(old_head)
    keras.utils.set_random_seed(seed)
    if from_scratch:
        trunk = keras.models.clone_model(trunk)  # same layers, new random weights
    head = build_head(int(trunk.output.shape[-1]), "dirichlet", schema.n_answers, rate, seed=seed)
    if prior is not None:
        start_at_prior(head, prior)
    model = compose(trunk, head, tuple(trunk.input.shape[1:]), "finetuned")
    return model, trunk, head


def _fit(model, train, val, *, loss, learning_rate, epochs, patience, phase: str) -> pd.DataFrame:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    fitted = model.fit(
        train, validation_data=val, epochs=epochs, callbacks=[stop], shuffle=False, verbose=0
    )
    history = pd.DataFrame(fitted.history)
    history.insert(0, "epoch", np.arange(len(history)))
    history.insert(0, "phase", phase)
    log.info(
        "%s: %d epochs, best val_loss %.4f at epoch %d",
        phase,
        len(history),
        history["val_loss"].min(),
        int(history["val_loss"].idxmin()),
    )
    return history


def _trainable_layers(trunk: keras.Model) -> list[keras.layers.Layer]:
    """The trunk's layers that hold weights, input to output, looking inside sub-models."""
    found = []
    for layer in trunk.layers:
        if isinstance(layer, keras.Model):
            found.extend(_trainable_layers(layer))
        elif layer.weights:
            found.append(layer)
    return found


def finetune_network(
    base_model: str | Path | keras.Model,
    shard_sources: Sequence[str | Path],
    shard_schema: Schema,
    schema: Schema,
    train_labels: pd.DataFrame,
    val_labels: pd.DataFrame,
    config: FineTuneConfig,
    *,
    seed: int = 0,
) -> tuple[keras.Model, pd.DataFrame]:
    """The fine-tuned model and its per-epoch history (module docstring).

    ``shard_sources`` hold every galaxy's image (written for ``shard_schema``); ``train_labels``
    and ``val_labels`` are id_str + ``schema``'s vote columns.
    """
    from zooflow.dirichlet_multinomial import constant_concentrations
    from zooflow.losses import build_loss

    base = base_model if isinstance(base_model, keras.Model) else load_model(base_model)
    _, image_shape = shard_files(shard_sources, verify_checksums=False)
    expected = tuple(int(s) for s in base.input.shape[1:])
    if tuple(image_shape) != expected:
        raise ValueError(
            f"the base model takes images of {expected}, the shards hold {tuple(image_shape)}: "
            "preprocess as the base run did"
        )
    prior = None
    if config.head_init == "prior":
        prior = constant_concentrations(train_labels[schema.label_cols].to_numpy(), schema)
        log.info("new head starts at the labels' best constant concentrations %s", prior.round(3))
    model, trunk, head = _new_network(base, schema, config.from_scratch, seed, prior)
    loss = build_loss("dirichlet_multinomial", schema)

    def images(labels, *, shuffle: bool):
        return make_dataset(
            shard_sources,
            shard_schema,
            batch_size=config.batch_size,
            labels=labels,
            label_schema=schema,
            shuffle=shuffle,
            seed=seed,
            cache=True,
        )

    log.info(
        "fine-tuning %s on %d galaxies (%d for validation), tree %r with %d answers",
        "from scratch" if config.from_scratch else "the base network's trunk",
        len(train_labels),
        len(val_labels),
        schema.name,
        schema.n_answers,
    )

    def on_images(learning_rate: float, epochs: int, phase: str) -> pd.DataFrame:
        return _fit(
            model,
            images(train_labels, shuffle=True),
            images(val_labels, shuffle=False),
            loss=loss,
            learning_rate=learning_rate,
            epochs=epochs,
            patience=config.patience,
            phase=phase,
        )

    phases = []
    if config.from_scratch:
        phases.append(on_images(config.learning_rate, config.epochs, "scratch"))
    else:
        from zooflow.training import features_dataset

        train = features_dataset(
            trunk, images(train_labels, shuffle=False), config.batch_size, seed, shuffle=True
        )
        val = features_dataset(
            trunk, images(val_labels, shuffle=False), config.batch_size, seed, shuffle=False
        )
        phases.append(
            _fit(
                head,
                train,
                val,
                loss=loss,
                learning_rate=config.learning_rate,
                epochs=config.epochs,
                patience=config.patience,
                phase="head",
            )
        )
        if config.unfreeze_layers:
            layers = _trainable_layers(trunk)
            for layer in layers[: max(len(layers) - config.unfreeze_layers, 0)]:
                layer.trainable = False
            phases.append(
                on_images(config.unfreeze_learning_rate, config.unfreeze_epochs, "unfrozen")
            )
            for layer in layers:
                layer.trainable = True
    return model, pd.concat(phases, ignore_index=True)


def save_finetuned(
    model: keras.Model,
    history: pd.DataFrame,
    schema: Schema,
    config: FineTuneConfig,
    *,
    model_path: str | Path,
    history_path: str | Path,
    seed: int,
    base: str,
) -> None:
    """The model with its card (a prediction-only run with ``schema.tree`` set to the new tree
    can use it), the history, and the settings beside the model."""
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_path)
    write_schema_card(model_path, schema, head="dirichlet")
    history.to_csv(history_path, index=False)
    write_json(
        model_path.parent / "finetune_config.json", {**asdict(config), "seed": seed, "base": base}
    )


def evaluate_finetuned(predictions_path: str | Path, schema: Schema, *, min_votes: int) -> dict:
    """Test scores of a fine-tuned model's predictions file: the mean negative log-likelihood
    of the observed votes under the MC-dropout predictive (nats per galaxy) and, per question,
    the RMSE of the mean predicted fractions against the observed ones (galaxies with at least
    ``min_votes`` answers)."""
    from zooflow.metrics import observed_fractions, question_rmse, test_negative_log_likelihood
    from zooflow.posteriors import mean_vote_fractions, read_predictions

    _, votes, predictions, _ = read_predictions(predictions_path)
    observed = observed_fractions(votes, schema, min_votes)
    rmse = question_rmse(mean_vote_fractions(predictions, schema), observed, schema)
    return {
        "n_galaxies": int(len(votes)),
        "test_nll": test_negative_log_likelihood(votes, predictions, schema),
        "rmse": {question: value for question, (value, _) in rmse.items()},
        "n_pairs": {question: n for question, (_, n) in rmse.items()},
    }


def run_finetune(
    *,
    base_model: str | Path,
    shard_sources: Sequence[str | Path],
    shard_tree: str | Path,
    tree: str | Path,
    catalogue: str | Path,
    splits: str | Path,
    settings: dict,
    seed: int,
    passes: int,
    min_votes: int,
    outputs,
) -> dict:
    """The workflow's fine-tuning: labels drawn from the training splits, validation on the
    val split, MC-dropout predictions and scores on the test split. ``outputs`` has ``model``,
    ``history``, ``predictions`` and ``evaluation`` paths; returns the evaluation. ``tree`` (the
    new question) and ``shard_tree`` (the shards' tree) are resolved trees that carry the
    question suffix (``zooflow.schema.write_resolved_tree``)."""
    from zooflow.ids import read_csv_with_ids
    from zooflow.predict import predict_catalogue
    from zooflow.schema import load_schema

    schema = load_schema(tree)
    shard_schema = load_schema(shard_tree)
    config = FineTuneConfig(**settings)
    table = pd.read_parquet(catalogue)
    split_table = read_csv_with_ids(splits)
    train = choose_labels(table, split_table, schema, n=config.labels, seed=seed)
    val = split_labels(table, split_table, schema, "val")
    test = split_labels(table, split_table, schema, "test")
    model, history = finetune_network(
        base_model, shard_sources, shard_schema, schema, train, val, config, seed=seed
    )
    save_finetuned(
        model,
        history,
        schema,
        config,
        model_path=outputs.model,
        history_path=outputs.history,
        seed=seed,
        base=str(base_model),
    )
    predict_catalogue(
        model,
        shard_sources,
        shard_schema,
        outputs.predictions,
        passes=passes,
        seed=seed,
        labels=test,
        label_schema=schema,
    )
    evaluation = evaluate_finetuned(outputs.predictions, schema, min_votes=min_votes)
    evaluation.update(n_train=len(train), n_val=len(val), tree=schema.name)
    write_json(outputs.evaluation, evaluation)
    log.info(
        "new tree %r on %d test galaxies: NLL %.3f nats per galaxy; RMSE %s",
        schema.name,
        evaluation["n_galaxies"],
        evaluation["test_nll"],
        ", ".join(f"{q} {v:.3f}" for q, v in evaluation["rmse"].items()),
    )
    return evaluation
