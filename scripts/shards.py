"""Snakemake entry point: write every split's galaxies into TFRecord shards with manifests."""

from zooflow.runlog import log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    # TensorFlow is imported inside the log, with its start-up banners silenced.
    with log_to(snakemake.log[0], quiet_imports=["tensorflow"]):
        from zooflow.schema import load_schema
        from zooflow.shards import SPLITS, write_all_shards

        write_all_shards(
            snakemake.input.images,
            snakemake.input.catalogue,
            snakemake.input.splits,
            {split: snakemake.output[split] for split in SPLITS},
            load_schema(snakemake.input.tree),
            examples_per_shard=snakemake.params.examples_per_shard,
            threads=snakemake.threads,
        )
