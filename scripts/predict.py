"""Snakemake entry point: MC-dropout posteriors for one shard group of every split a run needs."""

from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    # TensorFlow is imported inside the log, with its start-up banners silenced.
    with log_to(snakemake.log[0], quiet_imports=["tensorflow"]):
        from zooflow.predict import predict_splits
        from zooflow.schema import load_schema

        predict_splits(
            snakemake.input.model,
            {split: snakemake.input[f"shards_{split}"] for split in snakemake.params.splits},
            load_schema(snakemake.input.tree),
            snakemake.output.predictions,
            ids={"pool": snakemake.input.waiting} if "waiting" in snakemake.input.keys() else None,
            passes=snakemake.params.passes,
            batch_size=snakemake.params.batch_size,
            shard_group=(int(snakemake.wildcards.group), snakemake.params.shard_groups),
            seed=snakemake.params.seed,
            features=snakemake.params.features,
        )
