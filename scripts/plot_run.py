"""Snakemake entry point: calibration, posterior and training-curve figures for one run."""

from zooflow.plots import plot_run
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        plot_run(
            predictions_path=snakemake.input.predictions,
            coverage_path=snakemake.input.coverage,
            pit_path=snakemake.input.pit,
            history_path=snakemake.input.history,
            summary_path=snakemake.input.summary,
            images_path=snakemake.input.images,
            schema=load_schema(snakemake.input.tree),
            out=snakemake.output,
            binomial_answer=snakemake.params.binomial_answer,
            seed=snakemake.params.seed,
        )
