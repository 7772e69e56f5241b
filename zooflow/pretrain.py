"""Features to start from: a network trained on a separate mock survey, inside the workflow.

A project rarely starts from nothing: Zoobot starts a new survey from networks trained on
earlier Galaxy Zoo campaigns. On the mock survey the earlier campaign is another mock survey
(another seed, so none of its galaxies are the survey's own), taken through the library's own
data stage and trained on every labelled galaxy. Its feature extractor is what every training
of the workflow then starts from (``train.weights_path``), and with ``train.freeze_trunk`` what
the active-learning rounds keep fixed while they train only the head.

One job runs the steps in order, reusing the stages' library functions; the pretraining survey
is small and rendered once, so splitting it into jobs would only add TensorFlow start-ups.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from zooflow.schema import Schema

log = logging.getLogger(__name__)


def pretrain_features(
    out_dir: str | Path,
    schema: Schema,
    *,
    mock,
    seed: int,
    image_size: int,
    crop_fraction: float,
    greyscale: bool,
    train,
    passes: int = 30,
    examples_per_shard: int = 256,
    threads: int = 1,
) -> dict:
    """Render, check, preprocess, split and shard a mock survey, train on it, keep its features.

    ``mock`` is a :class:`zooflow.mock.MockSurveyConfig`, ``train`` a
    :class:`zooflow.training.TrainingConfig` (taken as given, except that the pretraining itself
    starts from scratch and trains every layer). Writes ``features.weights.h5`` (the trunk's
    feature extractor), ``model.keras``, ``history.csv`` and ``summary.json`` (the pretraining
    model scored on its own survey's test split) in ``out_dir``; returns that summary.
    """
    from zooflow.catalogue import ingest_to_files
    from zooflow.mock import simulate_survey
    from zooflow.preprocess import preprocess_catalogue
    from zooflow.splits import write_splits

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info("pretraining survey: %d galaxies, seed %d", mock.n_galaxies, seed)
    # Data steps first: preprocessing forks worker processes, safe only before TensorFlow loads.
    simulate_survey(out / "mock", schema, mock, seed=seed, threads=threads)
    ingest_to_files(
        out / "mock" / "catalogue.csv",
        out / "mock" / "images",
        schema,
        out / "catalogue.parquet",
        out / "rejected.csv",
        max_rejected_fraction=0.05,
    )
    preprocess_catalogue(
        out / "catalogue.parquet",
        out / "images.h5",
        image_size=image_size,
        crop_fraction=crop_fraction,
        greyscale=greyscale,
        threads=threads,
    )
    write_splits(
        out / "catalogue.parquet",
        out / "splits.csv",
        seed=seed,
        test_fraction=0.2,
        val_fraction=0.1,
        initial_fraction=0.0,
    )

    from zooflow.metrics import evaluate_predictions
    from zooflow.models import load_model, save_feature_weights
    from zooflow.predict import predict_catalogue
    from zooflow.shards import write_all_shards
    from zooflow.splits import SPLITS
    from zooflow.training import train_model

    shards = {split: out / "shards" / split for split in SPLITS}
    write_all_shards(
        out / "images.h5",
        out / "catalogue.parquet",
        out / "splits.csv",
        shards,
        schema,
        examples_per_shard=examples_per_shard,
        threads=threads,
    )
    config = replace(train, weights_path="", freeze_trunk=False)
    train_model(
        [shards["initial"], shards["pool"]],
        [shards["val"]],
        schema,
        config,
        model_path=out / "model.keras",
        history_path=out / "history.csv",
        state_dir=out / "train_state",
        seed=seed,
    )
    model = load_model(out / "model.keras")
    predict_catalogue(
        model,
        [shards["test"]],
        schema,
        out / "test_predictions.h5",
        head=config.head,
        passes=passes,
        seed=seed,
    )
    evaluation = out / "evaluation"
    evaluation.mkdir(exist_ok=True)
    summary = evaluate_predictions(
        out / "test_predictions.h5",
        schema,
        {
            name: evaluation / f"{name}.{'json' if name == 'summary' else 'csv'}"
            for name in ("regression", "questions", "coverage", "confident", "pit", "summary")
        },
        truth_path=out / "mock" / "truth.parquet",
        binomial_answer=config.binomial_answer,
    )
    save_feature_weights(model, out / "features.weights.h5")
    log.info(
        "pretrained features written; on its own test split RMSE %.3f, smooth-or-featured "
        "confident accuracy %s",
        summary["rmse"],
        summary["smooth_or_featured_confident_accuracy"],
    )
    return summary
