"""Snakemake entry point: every galaxy ranked by how unusual it looks, as a table and a figure."""

from zooflow.anomalies import outlier_scores
from zooflow.plots import plot_anomalies
from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        scores = outlier_scores(
            snakemake.input.tables,
            k=snakemake.params.k,
            reference_size=snakemake.params.reference_size,
            seed=snakemake.params.seed,
        )
        scores.to_csv(snakemake.output.anomalies, index=False)
        plot_anomalies(
            scores.head(snakemake.params.gallery_size),
            snakemake.input.images,
            snakemake.output.gallery,
        )
