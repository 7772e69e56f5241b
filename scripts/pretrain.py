"""Snakemake entry point: train the features every training starts from on a separate survey."""

from pathlib import Path

from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    # TensorFlow is imported inside the log, with its start-up banners silenced.
    with log_to(snakemake.log[0], quiet_imports=["tensorflow"]):
        from zooflow.mock import MockSurveyConfig
        from zooflow.pretrain import pretrain_features
        from zooflow.schema import load_schema
        from zooflow.training import TrainingConfig

        params = snakemake.params
        pretrain_features(
            Path(snakemake.output.features).parent,
            load_schema(snakemake.input.tree),
            mock=MockSurveyConfig(**params.mock),
            seed=params.seed,
            image_size=params.image_size,
            crop_fraction=params.crop_fraction,
            greyscale=params.greyscale,
            train=TrainingConfig(**params.train),
            passes=params.passes,
            examples_per_shard=params.examples_per_shard,
            threads=snakemake.threads,
        )
