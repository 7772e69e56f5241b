"""Snakemake entry point: the decision tree in use, with its question suffix, written once."""

from zooflow.runlog import log_to
from zooflow.schema import write_resolved_tree

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        write_resolved_tree(
            snakemake.input.tree, snakemake.params.question_suffix, snakemake.output.tree
        )
