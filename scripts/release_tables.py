"""Snakemake entry point: a split's (or a whole catalogue's) predictions as GZ DECaLS-style tables."""

from zooflow.release import write_release_tables
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        write_release_tables(
            snakemake.input.predictions,
            snakemake.output.friendly,
            snakemake.output.advanced,
            snakemake.output.friendly_csv,
            load_schema(snakemake.input.tree),
        )
