"""Pretraining inside the workflow: a separate mock survey, trained on, its features kept."""

import json

import numpy as np
import pandas as pd
import pytest

from zooflow.mock import MockSurveyConfig
from zooflow.pretrain import pretrain_features
from zooflow.schema import load_schema
from zooflow.training import TrainingConfig

pytestmark = pytest.mark.slow


def test_features_trained_on_another_survey_load_into_a_new_network(tmp_path):
    from zooflow.models import build_model, load_model, split_trunk_head

    schema = load_schema("decals_dr5")
    summary = pretrain_features(
        tmp_path / "pretrain",
        schema,
        mock=MockSurveyConfig(n_galaxies=60, image_size=32),
        seed=11,
        image_size=32,
        crop_fraction=1.0,
        greyscale=True,
        train=TrainingConfig(epochs=1, batch_size=16, augment=False, freeze_trunk=True),
        passes=3,
        examples_per_shard=16,
    )
    out = tmp_path / "pretrain"
    assert summary == json.loads((out / "evaluation" / "summary.json").read_text())
    assert summary["n_galaxies"] > 0 and np.isfinite(summary["rmse"])
    # It trained every layer from scratch (freeze_trunk does not apply to pretraining)...
    splits = pd.read_csv(out / "splits.csv")
    assert set(splits["split"]) == {"test", "val", "pool"}
    trained = load_model(out / "model.keras")
    # ...and its feature extractor is what a new network starts from, whether that network
    # predicts the whole tree or, as W+20's mode with pretrained features does, one answer.
    for head, n_answers in [("dirichlet", schema.n_answers), ("binomial", 1)]:
        started = build_model(
            "w20_cnn",
            input_shape=(32, 32, 1),
            head=head,
            n_answers=n_answers,
            weights_path=out / "features.weights.h5",
            seed=1,
        )
        for expected, got in zip(
            split_trunk_head(trained)[0].get_layer("features").get_weights(),
            split_trunk_head(started)[0].get_layer("features").get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(got, expected)
        assert started.output_shape[-1] == n_answers
