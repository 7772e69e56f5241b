"""Snakemake entry point: a run's representations as tables, with a principal-component copy."""

from pathlib import Path

from zooflow.representations import write_representations
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        write_representations(
            {
                Path(path).name.removesuffix("_predictions.h5"): path
                for path in snakemake.input.predictions
            },
            Path(snakemake.output.pca).parent,
            n_components=snakemake.params.pca_components,
        )
