"""Snakemake entry point: a new question learned on a trained network's trunk, then tested."""

from zooflow.finetune import run_finetune
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        run_finetune(
            base_model=snakemake.input.base,
            shard_sources=snakemake.input.shards,
            shard_tree=snakemake.input.shard_tree,
            tree=snakemake.input.tree,
            catalogue=snakemake.input.catalogue,
            splits=snakemake.input.splits,
            settings=snakemake.params.settings,
            seed=snakemake.params.seed,
            passes=snakemake.params.passes,
            min_votes=snakemake.params.min_votes,
            outputs=snakemake.output,
        )
