"""Snakemake entry point: the supervised run's browsable site (results/explorer/index.html)."""

from pathlib import Path

from zooflow.explorer import Round, write_explorer
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        splits = list(snakemake.params.splits)
        representations = snakemake.input.representations
        write_explorer(
            dict(zip(splits, snakemake.input.posteriors, strict=True)),
            snakemake.input.images,
            snakemake.input.catalogue,
            load_schema(snakemake.input.tree),
            Path(snakemake.output.index).parent,
            representations=(
                dict(zip(splits, representations, strict=True)) if representations else None
            ),
            rounds=[
                Round(
                    record["strategy"],
                    record["seed"],
                    record["round"],
                    acquired=acquired,
                    scores=scores,
                )
                for record, acquired, scores in zip(
                    snakemake.params.rounds,
                    snakemake.input.acquired,
                    snakemake.input.scores,
                    strict=True,
                )
            ],
            neighbours=snakemake.params.neighbours,
            thumbnail_size=snakemake.params.thumbnail_size,
            max_galaxies=snakemake.params.max_galaxies,
        )
