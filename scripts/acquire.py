"""Snakemake entry point: score the waiting pool and acquire this round's galaxies."""

from zooflow.acquisition import acquire
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        acquire(
            snakemake.input.get("predictions"),
            snakemake.input.unlabelled,
            snakemake.input.catalogue,
            load_schema(snakemake.input.tree),
            strategy=snakemake.wildcards.strategy,
            n_acquire=snakemake.params.n_acquire,
            scores_out=snakemake.output.scores,
            acquired_out=snakemake.output.acquired,
            expected_votes=snakemake.params.expected_votes,
            question_weights=dict(snakemake.params.question_weights),
            seed=snakemake.params.seed,
            information=snakemake.params.information,
            draws_per_sample=snakemake.params.draws_per_sample,
            epig_targets=snakemake.params.epig_targets,
            score_parts=snakemake.input.get("scores", []),
        )
