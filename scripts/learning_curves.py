"""Snakemake entry point: learning curves per strategy, labels saved, what each strategy picked."""

from zooflow.runlog import log_to
from zooflow.schema import load_schema
from zooflow.study import summarise_rounds

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        summarise_rounds(
            snakemake.params.runs,
            snakemake.input.catalogue,
            load_schema(snakemake.input.tree),
            snakemake.output,
            baseline=snakemake.params.baseline,
        )
