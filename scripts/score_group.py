"""Snakemake entry point: score one shard group's waiting galaxies for this round's strategy."""

from pathlib import Path

from zooflow.acquisition import score_part
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        params = snakemake.params
        score_part(
            Path(snakemake.input.part) / "pool.h5",
            load_schema(snakemake.input.tree),
            strategy=snakemake.wildcards.strategy,
            scores_out=snakemake.output.scores,
            calibration_path=snakemake.input.calibration or None,
            group=int(snakemake.wildcards.group),
            expected_votes=params.expected_votes,
            question_weights=dict(params.question_weights),
            seed=params.seed,
            information=params.information,
            draws_per_sample=params.draws_per_sample,
        )
