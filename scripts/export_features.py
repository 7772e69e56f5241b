"""Snakemake entry point: save a trained model's feature extractor for another run to start from."""

from zooflow.runlog import log_to
from zooflow.training import export_feature_weights

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        export_feature_weights(snakemake.input.model, snakemake.output.weights)
