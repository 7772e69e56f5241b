"""Snakemake entry point: train one model on the run's labelled galaxies."""

from zooflow.runlog import log_to
from zooflow.schema import load_schema
from zooflow.training import TrainingConfig, train_model

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        train_model(
            snakemake.input.shards,
            [snakemake.input.val],
            load_schema(snakemake.input.tree, snakemake.params.question_suffix),
            TrainingConfig(**snakemake.params.train),
            model_path=snakemake.output.model,
            history_path=snakemake.output.history,
            state_dir=snakemake.params.state_dir,
            tensorboard_dir=snakemake.output.tensorboard,
            labels=snakemake.input.labelled,
            initial_model=snakemake.input.get("warm_start") or None,
            seed=snakemake.params.seed,
        )
