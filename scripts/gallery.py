"""Snakemake entry point: the most and least informative galaxies of a round."""

from zooflow.plots import plot_gallery
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        plot_gallery(
            snakemake.input.scores,
            snakemake.input.images,
            snakemake.output.gallery,
            n_galaxies=snakemake.params.n_galaxies,
        )
