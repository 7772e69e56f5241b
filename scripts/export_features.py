"""Snakemake entry point: save a trained model's feature extractor for another run to start from."""

from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    # TensorFlow is imported inside the log, with its start-up banners silenced.
    with log_to(snakemake.log[0], quiet_imports=["tensorflow"]):
        from zooflow.training import export_feature_weights

        export_feature_weights(snakemake.input.model, snakemake.output.weights)
