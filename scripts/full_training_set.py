"""Snakemake entry point: the supervised run trains on every labelled galaxy of the given splits."""

from zooflow.rounds import write_labelled_from_splits
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        write_labelled_from_splits(
            snakemake.input.splits,
            snakemake.input.catalogue,
            load_schema(snakemake.input.tree),
            snakemake.params.splits,
            snakemake.output.labelled,
        )
