"""Snakemake entry point: the oracle adds the acquired galaxies' votes to the labelled set."""

from zooflow.rounds import reveal
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        campaign = snakemake.params.oracle == "campaign"
        reveal(
            snakemake.input.labelled,
            snakemake.input.unlabelled,
            snakemake.input.acquired,
            load_schema(snakemake.input.tree, snakemake.params.question_suffix),
            snakemake.output.labelled,
            snakemake.output.unlabelled,
            catalogue_path=None if campaign else snakemake.input.votes,
            campaign_votes_path=snakemake.input.votes if campaign else None,
        )
