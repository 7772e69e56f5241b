"""Snakemake entry point: assign every galaxy to test, val, initial or pool from a hash of its id."""

from zooflow.runlog import log_to
from zooflow.splits import write_splits

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        write_splits(
            snakemake.input.catalogue,
            snakemake.output.splits,
            seed=snakemake.params.seed,
            test_fraction=snakemake.params.test_fraction,
            val_fraction=snakemake.params.val_fraction,
            initial_fraction=snakemake.params.initial_fraction,
        )
