"""Snakemake entry point: fit one temperature per question on a run's validation predictions."""

from pathlib import Path

from zooflow.calibration import calibrate_run
from zooflow.runlog import log_to
from zooflow.schema import load_schema

# Guarded: process pools that spawn workers re-import this file as their main module.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        calibrate_run(
            [Path(group) / "val.h5" for group in snakemake.input.parts],
            snakemake.output.calibration,
            load_schema(snakemake.input.tree),
            enabled=snakemake.params.enabled,
            min_votes=snakemake.params.min_votes,
            seed=snakemake.params.seed,
        )
