"""Is a trained network worth reusing for a new question? Fine-tuned against trained from scratch.

1. Draws a mock survey (GZ DECaLS DR5 tree, every question voted on) and writes it as a
   catalogue of images and votes.
2. Runs the workflow's `full` target on it with `schema.tree` set to
   config/studies/decals_without_merging.yaml: the base network (and its pretraining) never sees
   a merger vote. The merger question (config/studies/merging_tree.yaml) is then new to it.
3. For each seed and number of labels, trains the merger question with
   `zooflow.finetune.finetune_network` (the `finetune` rule's code) twice on the same galaxies:
   a new head on the base network's frozen trunk, and the same architecture from random weights
   (`from_scratch`). Both stop early on the same validation split. Each is scored on the test
   split: the mean negative log-likelihood of the observed merger votes under the MC-dropout
   predictive (nats per galaxy) and the RMSE of the predicted vote fractions.

Prints one row per number of labels: mean and spread over seeds of both scores for both
trainings, the RMSE of the constant prediction (the training galaxies' mean fractions), and in
how many seeds fine-tuning has the lower test loss. With ``--unfreeze-layers N`` a third
training per seed continues the fine-tuned one with the trunk's last N weighted layers unfrozen
(``finetune.unfreeze_layers``) and is printed against the same scratch networks.

Goal (representations issue, part 4): at 100 labels the fine-tuned network's test loss beats
the network trained from scratch in all three seeds.

Both trainings start their new head the same way (``--head-init``, the config's
``finetune.head_init``: the labels' best constant Dirichlet, or Keras' random initialisers).

Run: .venv/bin/python benchmarks/finetune.py [--n-galaxies 3000] [--survey-seed 42]
     [--seeds 1 2 3] [--labels 100 300 1000] [--unfreeze-layers N]
     [--head-init prior|random] [--keep DIR]
About 50 minutes on 2 cores with the defaults (the base run, then 18 trainings).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _workflow import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("test", "val", "initial", "pool")
BASE_TREE = REPO / "config" / "studies" / "decals_without_merging.yaml"
NEW_TREE = REPO / "config" / "studies" / "merging_tree.yaml"
PASSES = 30
MIN_VOTES = 5


def prepare(root: Path, n_galaxies: int, survey_seed: int) -> None:
    """The survey as a catalogue, the base run, and the merger votes checked by the workflow."""
    from zooflow.mock import MockSurveyConfig, simulate_survey
    from zooflow.schema import load_schema

    copy_workflow(root)
    survey = root / "survey"
    if not (survey / "catalogue.csv").exists():
        simulate_survey(
            survey,
            load_schema("decals_dr5"),
            MockSurveyConfig(n_galaxies=n_galaxies, image_size=64),
            seed=survey_seed,
        )
    settings = {
        "seed": survey_seed,
        "schema": {"tree": str(BASE_TREE)},
        "data": {
            "source": "catalogue",
            "catalogue": str(survey / "catalogue.csv"),
            "images": str(survey / "images"),
        },
        "finetune": {"tree": str(NEW_TREE)},
    }
    (root / "finetune_study.yaml").write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "full"]
    command += ["results/finetune/catalogue.parquet", "--configfile", "finetune_study.yaml"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-4000:]}")


def baseline_rmse(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """RMSE on the test split of the constant prediction a model must beat: the training
    galaxies' mean observed vote fractions."""
    from zooflow.metrics import observed_fractions, question_rmse
    from zooflow.schema import load_schema

    schema = load_schema(NEW_TREE)
    mean = np.nanmean(
        observed_fractions(train[schema.label_cols].to_numpy(float), schema, MIN_VOTES), axis=0
    )
    observed = observed_fractions(test[schema.label_cols].to_numpy(float), schema, MIN_VOTES)
    constant = np.broadcast_to(mean, observed.shape)
    return question_rmse(constant, observed, schema)["merging"][0]


def one_training(
    root: Path, *, labels: int, seed: int, training: str, unfreeze: int, head_init: str = "prior"
) -> dict:
    import keras

    from zooflow.finetune import (
        FineTuneConfig,
        choose_labels,
        evaluate_finetuned,
        finetune_network,
        split_labels,
    )
    from zooflow.predict import predict_catalogue
    from zooflow.schema import load_schema

    keras.backend.clear_session()
    schema, shard_schema = load_schema(NEW_TREE), load_schema(BASE_TREE)
    catalogue = pd.read_parquet(root / "results" / "finetune" / "catalogue.parquet")
    splits = pd.read_csv(root / "results" / "data" / "splits.csv", dtype=str)
    shards = [root / "results" / "data" / "shards" / split for split in SPLITS]
    train = choose_labels(catalogue, splits, schema, n=labels, seed=seed)
    model, history = finetune_network(
        root / "results" / "full" / "model.keras",
        shards,
        shard_schema,
        schema,
        train,
        split_labels(catalogue, splits, schema, "val"),
        FineTuneConfig(
            labels=labels,
            from_scratch=training == "scratch",
            unfreeze_layers=unfreeze if training == "unfrozen" else 0,
            head_init=head_init,
        ),
        seed=seed,
    )
    predictions = root / "scores" / f"{training}_{labels}_{seed}.h5"
    predictions.parent.mkdir(exist_ok=True)
    predict_catalogue(
        model,
        shards,
        shard_schema,
        predictions,
        passes=PASSES,
        seed=seed,
        labels=split_labels(catalogue, splits, schema, "test"),
        label_schema=schema,
    )
    scores = evaluate_finetuned(predictions, schema, min_votes=MIN_VOTES)
    return {
        "baseline_rmse": baseline_rmse(train, split_labels(catalogue, splits, schema, "test")),
        "labels": labels,
        "seed": seed,
        "training": training,
        "test_nll": scores["test_nll"],
        "rmse": scores["rmse"]["merging"],
        "epochs": len(history),
    }


def spread(values) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"


def report(results: pd.DataFrame) -> None:
    reused = [t for t in ("fine-tuned", "unfrozen") if t in set(results["training"])]
    print(
        "labels | "
        + " | ".join(f"{t} NLL" for t in [*reused, "scratch"])
        + " | "
        + " | ".join(f"{t} RMSE" for t in [*reused, "scratch"])
        + " | training-mean RMSE | "
        + " | ".join(f"{t} wins" for t in reused)
    )
    for labels, rows in results.groupby("labels"):
        wide = rows.pivot(
            index="seed", columns="training", values=["test_nll", "rmse", "baseline_rmse"]
        )
        nll = [spread(wide["test_nll"][t]) for t in [*reused, "scratch"]]
        rmse = [spread(wide["rmse"][t]) for t in [*reused, "scratch"]]
        wins = [
            f"{int((wide['test_nll'][t] < wide['test_nll']['scratch']).sum())}/{len(wide)}"
            for t in reused
        ]
        print(
            f"{labels:>6} | "
            + " | ".join(nll + rmse)
            + f" | {spread(wide['baseline_rmse']['scratch'])} | "
            + " | ".join(wins)
        )
    smallest = results["labels"].min()
    at_smallest = results[results["labels"] == smallest].pivot(
        index="seed", columns="training", values="test_nll"
    )
    for training in reused:
        won = bool((at_smallest[training] < at_smallest["scratch"]).all())
        print(
            f"goal: at {smallest} labels {training} has the lower test loss in every seed: "
            f"{'PASS' if won else 'FAIL'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-galaxies", type=int, default=3000)
    parser.add_argument("--survey-seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument(
        "--unfreeze-layers",
        type=int,
        default=0,
        help="also train with the trunk's last N weighted layers unfrozen (0: not)",
    )
    parser.add_argument(
        "--head-init",
        choices=["prior", "random"],
        default="prior",
        help="how both trainings start their new head (finetune.head_init)",
    )
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-finetune-"))
    root.mkdir(parents=True, exist_ok=True)
    prepare(root, args.n_galaxies, args.survey_seed)
    rows = []
    for labels in args.labels:
        for seed in args.seeds:
            trainings = ["fine-tuned", "scratch"] + (["unfrozen"] if args.unfreeze_layers else [])
            for training in trainings:
                rows.append(
                    one_training(
                        root,
                        labels=labels,
                        seed=seed,
                        training=training,
                        unfreeze=args.unfreeze_layers,
                        head_init=args.head_init,
                    )
                )
                print(rows[-1], flush=True)
    results = pd.DataFrame(rows)
    results.to_csv(root / "finetune_results.csv", index=False)
    print(
        f"survey: {args.n_galaxies} galaxies, seed {args.survey_seed}; new question: merging; "
        f"head started at: {args.head_init}"
    )
    report(results)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
