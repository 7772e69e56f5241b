"""Snakemake entry point: join one split's predictions from every shard group and summarise."""

from pathlib import Path

from zooflow.posteriors import gather_and_summarise
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        gather_and_summarise(
            [Path(group) / f"{snakemake.wildcards.split}.h5" for group in snakemake.input.parts],
            snakemake.output.predictions,
            snakemake.output.summary,
            load_schema(snakemake.input.tree),
            binomial_answer=snakemake.params.binomial_answer,
            calibration_path=snakemake.input.calibration or None,
            seed=snakemake.params.seed,
        )
