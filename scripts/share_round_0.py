"""Snakemake entry point: another strategy's round 0 reuses the first strategy's model."""

from zooflow.rounds import share_first_round
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        share_first_round(
            snakemake.input.source_labelled,
            snakemake.input.labelled,
            {
                snakemake.input.model: snakemake.output.model,
                snakemake.input.history: snakemake.output.history,
            },
        )
