"""Snakemake entry point: train one model on the run's labelled galaxies."""

from pathlib import Path

from zooflow.runlog import exclusive, log_to

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    # TensorFlow is imported inside the log, with its start-up banners silenced.
    with log_to(snakemake.log[0], quiet_imports=["tensorflow"]):
        from zooflow.schema import load_schema
        from zooflow.training import STATE_LOCK, TrainingConfig, train_model

        # One process at a time writes the state a killed training resumes from.
        with exclusive(Path(snakemake.params.state_dir) / STATE_LOCK):
            train_model(
                snakemake.input.shards,
                [snakemake.input.val],
                load_schema(snakemake.input.tree),
                TrainingConfig(**snakemake.params.train),
                model_path=snakemake.output.model,
                history_path=snakemake.output.history,
                state_dir=snakemake.params.state_dir,
                tensorboard_dir=snakemake.output.tensorboard,
                labels=snakemake.input.labelled,
                initial_model=snakemake.input.get("warm_start") or None,
                seed=snakemake.params.seed,
            )
