"""Snakemake entry point: MC-dropout posteriors for one group of one split's shards."""

from zooflow.predict import predict_catalogue
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        predict_catalogue(
            snakemake.input.model,
            [snakemake.input.shards],
            load_schema(snakemake.input.tree, snakemake.params.question_suffix),
            snakemake.output.predictions,
            head=snakemake.params.head,
            passes=snakemake.params.passes,
            batch_size=snakemake.params.batch_size,
            ids=snakemake.input.get("ids"),
            shard_group=(int(snakemake.wildcards.group), snakemake.params.shard_groups),
            seed=snakemake.params.seed,
        )
