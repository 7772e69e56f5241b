"""Snakemake entry point: render the embedded mock survey (images, votes, truth table)."""

from pathlib import Path

from zooflow.mock import MockSurveyConfig, simulate_survey
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        simulate_survey(
            out_dir=Path(snakemake.output.catalogue).parent,
            schema=load_schema(snakemake.input.tree),
            config=MockSurveyConfig(**snakemake.params.mock),
            seed=snakemake.params.seed,
            threads=snakemake.threads,
        )
