"""What a trained model expects, read from its ``.keras`` file without TensorFlow.

A ``.keras`` file is a zip archive (Keras' ``config.json``, ``metadata.json``, weights). Training
adds ``zooflow.json``, the model card: the decision tree's answer columns (with the question
suffix), the head, the tree's name. The input shape is read from Keras' own ``config.json``.
Keras ignores the extra entry when it loads the model.

A prediction-only run (``predict.model``) compares the card with its configuration before any
job starts, so a model of another tree, image size or channel count stops the run with the
setting to change instead of failing in the middle (or silently predicting nonsense).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from zooflow.atomic import atomic_path

CARD_NAME = "zooflow.json"
MODEL_NAME = "model.keras"


class ModelCardError(ValueError):
    """A model file that cannot be read, or that does not fit the configuration."""


@dataclass(frozen=True)
class ModelCard:
    path: Path
    input_shape: tuple[int, int, int]  # (height, width, channels)
    outputs: int
    label_cols: tuple[str, ...] | None  # None: a model saved without a card
    tree: str | None
    question_suffix: str | None
    head: str | None


def resolve_model_path(model: str | Path) -> Path:
    """``model`` itself if a file, else ``model/model.keras`` (a run folder of this workflow)."""
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_NAME
    if not path.is_file():
        raise ModelCardError(
            f"predict.model: {model} is neither a .keras file nor a run folder with "
            f"{MODEL_NAME} (e.g. results/full of a finished run)"
        )
    return path


def write_model_card(
    model_path: str | Path, *, label_cols, tree: str, question_suffix: str, head: str
) -> None:
    """Add (or replace) the card in a saved ``.keras`` file."""
    model_path = Path(model_path)
    card = {
        "label_cols": list(label_cols),
        "tree": tree,
        "question_suffix": question_suffix,
        "head": head,
    }
    with zipfile.ZipFile(model_path) as archive:
        if CARD_NAME not in archive.namelist():
            entries = None
        else:
            entries = {n: archive.read(n) for n in archive.namelist() if n != CARD_NAME}
    if entries is None:
        with zipfile.ZipFile(model_path, "a") as archive:
            archive.writestr(CARD_NAME, json.dumps(card, indent=1))
        return
    with atomic_path(model_path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        archive.writestr(CARD_NAME, json.dumps(card, indent=1))


def write_schema_card(model_path: str | Path, schema, *, head: str) -> None:
    """The card of a model trained on ``schema`` (a :class:`zooflow.schema.Schema`)."""
    write_model_card(
        model_path,
        label_cols=schema.label_cols,
        tree=schema.name,
        question_suffix=schema.question_suffix,
        head=head,
    )


def read_model_card(model_path: str | Path) -> ModelCard:
    """The card and Keras' input shape and output size of a ``.keras`` file."""
    model_path = Path(model_path)
    try:
        with zipfile.ZipFile(model_path) as archive:
            names = set(archive.namelist())
            config = json.loads(archive.read("config.json"))
            card = json.loads(archive.read(CARD_NAME)) if CARD_NAME in names else {}
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as err:
        raise ModelCardError(
            f"{model_path}: not a Keras 3 .keras model file ({err}); give the model.keras a "
            "zooflow training wrote"
        ) from None
    layers = config.get("config", {}).get("layers", [])
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if not inputs:
        raise ModelCardError(f"{model_path}: its Keras config names no input layer")
    shape = inputs[0]["config"].get("batch_shape") or inputs[0]["config"].get("batch_input_shape")
    outputs = _output_units(layers)
    return ModelCard(
        path=model_path,
        input_shape=tuple(int(v) for v in shape[1:]),
        outputs=outputs,
        label_cols=tuple(card["label_cols"]) if "label_cols" in card else None,
        tree=card.get("tree"),
        question_suffix=card.get("question_suffix"),
        head=card.get("head"),
    )


def _output_units(layers: list[dict]) -> int:
    """Units of the last Dense layer, looking inside nested models (the head is one)."""
    units = -1
    for layer in layers:
        nested = layer.get("config", {}).get("layers")
        if nested:
            units = _output_units(nested)
        elif layer.get("class_name") == "Dense":
            units = int(layer["config"]["units"])
    return units


def check_model_fits(
    card: ModelCard, *, label_cols, image_size: int, channels: int, head: str
) -> None:
    """Raise a ModelCardError naming every setting in which the configuration and model differ."""
    problems = []
    height, width, model_channels = card.input_shape
    if (height, width) != (image_size, image_size):
        problems.append(
            f"it takes {height}x{width} images: set preprocess.image_size: {height} "
            f"(now {image_size})"
        )
    if model_channels != channels:
        wanted = "grey" if model_channels == 1 else "rgb"
        problems.append(
            f"it takes {model_channels}-channel images: set preprocess.channels: {wanted}"
        )
    if card.head is not None and card.head != head:
        problems.append(f"it has the {card.head} head: set train.head: {card.head}")
    if card.label_cols is not None and list(card.label_cols) != list(label_cols):
        problems.append(
            f"it predicts tree {card.tree!r} with question suffix {card.question_suffix!r} "
            f"({len(card.label_cols)} answers, e.g. {card.label_cols[0]}): set schema.tree and "
            "schema.question_suffix to those"
        )
    elif card.label_cols is None and head == "dirichlet" and card.outputs != len(label_cols):
        problems.append(
            f"it has {card.outputs} outputs but the configured tree has {len(label_cols)} answers"
        )
    if problems:
        raise ModelCardError(
            f"predict.model {card.path} does not fit this configuration: " + "; ".join(problems)
        )
