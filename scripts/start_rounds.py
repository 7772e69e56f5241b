"""Snakemake entry point: round 0's labelled set and waiting pool."""

from zooflow.rounds import start_rounds
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        start_rounds(
            snakemake.input.splits,
            snakemake.input.catalogue,
            load_schema(snakemake.input.tree),
            snakemake.output.labelled,
            snakemake.output.unlabelled,
            oracle=snakemake.params.oracle,
        )
