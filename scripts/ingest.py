"""Snakemake entry point: check every catalogue row, keep the good ones, explain the rest."""

from zooflow.catalogue import ingest_to_files
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log.main):
        params = snakemake.params
        ingest_to_files(
            snakemake.input.catalogue,
            snakemake.input.images,
            load_schema(snakemake.input.tree),
            snakemake.output.clean,
            snakemake.log.rejected,
            max_rejected_fraction=params.max_rejected_fraction,
            column_mapping=params.column_mapping or None,
            id_column=params.id_column,
            file_column=params.file_column,
            file_template=params.file_template or None,
            tree_tolerance=params.tree_tolerance,
            tree_tolerance_votes=params.tree_tolerance_votes,
            threads=snakemake.threads,
            votes_optional=params.votes_optional,
            min_votes=params.min_votes,
        )
