"""What a trained model expects, read without TensorFlow, and held against the configuration."""

import json
import zipfile
from pathlib import Path

import pytest

from zooflow.modelcard import (
    ModelCardError,
    check_model_fits,
    read_model_card,
    write_model_card,
)
from zooflow.schema import load_schema


def fake_keras_file(path: Path, shape=(32, 32, 3), units=34) -> Path:
    """The parts of a .keras archive the card reader looks at (Keras' config.json layout)."""
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, *shape]}},
                {
                    "class_name": "Functional",
                    "config": {
                        "layers": [
                            {"class_name": "Dense", "config": {"units": units}},
                        ]
                    },
                },
            ]
        },
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"weights")
    return path


def test_the_card_round_trips_and_a_rewrite_keeps_the_rest_of_the_archive(tmp_path):
    decals = load_schema("decals_dr5", "-dr5")
    model = fake_keras_file(tmp_path / "model.keras")
    assert read_model_card(model).label_cols is None
    for head in ("binomial", "dirichlet"):  # the second write replaces the first card
        write_model_card(
            model,
            label_cols=decals.label_cols,
            tree="decals_dr5",
            question_suffix="-dr5",
            head=head,
        )
    card = read_model_card(model)
    assert card.input_shape == (32, 32, 3) and card.outputs == 34 and card.head == "dirichlet"
    assert card.label_cols == tuple(decals.label_cols) and card.question_suffix == "-dr5"
    with zipfile.ZipFile(model) as archive:
        assert sorted(archive.namelist()) == ["config.json", "model.weights.h5", "zooflow.json"]
        assert archive.read("model.weights.h5") == b"weights"


def test_every_mismatch_is_named_with_the_setting_to_change(tmp_path):
    decals = load_schema("decals_dr5", "-dr5")
    model = fake_keras_file(tmp_path / "model.keras", shape=(64, 64, 1))
    write_model_card(
        model,
        label_cols=decals.label_cols,
        tree="decals_dr5",
        question_suffix="-dr5",
        head="dirichlet",
    )
    card = read_model_card(model)
    check_model_fits(
        card, label_cols=decals.label_cols, image_size=64, channels=1, head="dirichlet"
    )
    with pytest.raises(ModelCardError) as raised:
        check_model_fits(
            card,
            label_cols=load_schema("gz2").label_cols,
            image_size=32,
            channels=3,
            head="binomial",
        )
    message = str(raised.value)
    assert message.startswith(f"predict.model {model} does not fit this configuration: ")
    for expected in (
        "set preprocess.image_size: 64 (now 32)",
        "set preprocess.channels: grey",
        "set train.head: dirichlet",
        "it predicts tree 'decals_dr5' with question suffix '-dr5' (34 answers",
    ):
        assert expected in message


def test_a_model_without_a_card_is_checked_on_its_answer_count(tmp_path):
    card = read_model_card(fake_keras_file(tmp_path / "old.keras", units=30))
    with pytest.raises(ModelCardError, match="it has 30 outputs but the configured tree has 34"):
        check_model_fits(
            card,
            label_cols=load_schema("decals_dr5").label_cols,
            image_size=32,
            channels=3,
            head="dirichlet",
        )
