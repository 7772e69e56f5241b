"""Snakemake entry point: score the test-set posteriors (accuracy, calibration, truth)."""

from zooflow.metrics import evaluate_predictions
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        evaluate_predictions(
            snakemake.input.predictions,
            load_schema(snakemake.input.tree),
            snakemake.output,
            truth_path=snakemake.input.truth or None,
            labelled_path=snakemake.input.labelled,
            min_votes=snakemake.params.min_votes,
            confident_threshold=snakemake.params.confident_threshold,
            binomial_answer=snakemake.params.binomial_answer,
            seed=snakemake.params.seed,
        )
