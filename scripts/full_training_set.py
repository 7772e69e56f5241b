"""Snakemake entry point: the supervised run trains on every labelled galaxy of the given splits."""

from zooflow.rounds import write_labelled_from_splits
from zooflow.runlog import log_to

with log_to(snakemake.log[0]):
    write_labelled_from_splits(
        snakemake.input.splits,
        snakemake.input.catalogue,
        snakemake.params.splits,
        snakemake.output.labelled,
    )
