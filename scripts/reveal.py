"""Snakemake entry point: the oracle adds the acquired galaxies' votes to the labelled set."""

from zooflow.rounds import reveal, reveal_campaign
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log.main):
        params = snakemake.params
        schema = load_schema(snakemake.input.tree)
        previous = (snakemake.input.labelled, snakemake.input.unlabelled)
        outputs = (snakemake.output.labelled, snakemake.output.unlabelled)
        if params.oracle == "campaign":
            reveal_campaign(
                *previous,
                schema,
                *outputs,
                snakemake.log.rejected,
                asked=snakemake.input.asked,
                votes=snakemake.input.votes,
                tree_tolerance=params.tree_tolerance,
                tree_tolerance_votes=params.tree_tolerance_votes,
                max_rejected_fraction=params.max_rejected_fraction,
            )
        else:
            reveal(
                *previous,
                snakemake.input.acquired,
                schema,
                *outputs,
                catalogue_path=snakemake.input.catalogue,
            )
