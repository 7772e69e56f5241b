"""Shared test support: run the real workflow, through Snakemake, in a scratch copy."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "data" / "tiny.yaml"
# The shipped configuration every run reads first, and its first (headline) strategy: the
# first strategy's folders are the ones the tiny runs' tests look into.
SHIPPED_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
FIRST_STRATEGY = SHIPPED_CONFIG["active_learning"]["strategies"][0]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A scratch copy of the workflow, so runs and edits never touch the checkout: one list of the
# workflow's parts and one copy, shared with benchmarks/ (appended, so it shadows nothing).
sys.path.append(str(REPO / "benchmarks"))
from _workflow import copy_workflow  # noqa: E402, F401  (tests import it from here)

# Cores of the suite's Snakemake runs (the shared tiny runs too): the SLURM test asks its
# cluster for as many, so that its outputs can be compared with theirs byte for byte.
REFERENCE_CORES = 2


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the Snakemake CLI of this environment in ``workdir``; show its output on failure."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(REFERENCE_CORES), *args]
    # As a user's shell has it: the workflow itself quiets TensorFlow for its jobs.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name``, filled by ``build`` once per test session however many pytest-xdist
    workers ask for it: the first builds it under a lock while the others wait. A failed build is
    recorded, so that the others fail with its reason instead of spending the time again."""
    base = tmp_path_factory.getbasetemp()
    # Each xdist worker has its own base folder inside the session's; a plain run has just one.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with FileLock(root / f"{name}.lock"):
        if failed.exists():
            pytest.fail(f"building the shared {name} folder failed:\n{failed.read_text()}")
        if not done.exists():
            try:
                build(folder)
            except BaseException as error:  # pytest.fail's exception is a BaseException
                failed.write_text(f"{type(error).__name__}: {error}")
                raise
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_data_run(tmp_path_factory) -> Path:
    """The data stage of the real workflow run once through Snakemake on the tiny config."""

    def build(workdir: Path) -> None:
        copy_workflow(workdir)
        run_snakemake(workdir, "data", "--configfile", str(TINY_CONFIG))

    return built_once(tmp_path_factory, "tiny_data", build)


@pytest.fixture(scope="session")
def tiny_survey(tmp_path_factory):
    """A 120-galaxy mock survey taken through the data stage by the library (no Snakemake)."""
    from types import SimpleNamespace

    from zooflow.catalogue import ingest_catalogue, write_ingest
    from zooflow.mock import MockSurveyConfig, simulate_survey
    from zooflow.preprocess import preprocess_catalogue
    from zooflow.schema import load_schema
    from zooflow.shards import write_split_shards
    from zooflow.splits import SPLITS, write_splits

    root = tmp_path_factory.mktemp("tiny_survey")
    schema = load_schema("decals_dr5")
    simulate_survey(root / "mock", schema, MockSurveyConfig(n_galaxies=120, image_size=32), seed=7)
    result = ingest_catalogue(root / "mock" / "catalogue.csv", root / "mock" / "images", schema)
    write_ingest(result, root / "catalogue.parquet", root / "rejected.csv", 0.05)
    preprocess_catalogue(
        root / "catalogue.parquet",
        root / "images.h5",
        image_size=32,
        crop_fraction=1.0,
        greyscale=True,
    )
    write_splits(
        root / "catalogue.parquet",
        root / "splits.csv",
        seed=7,
        test_fraction=0.2,
        val_fraction=0.2,
        initial_fraction=0.3,
    )
    shards = {}
    for split in SPLITS:
        shards[split] = root / "shards" / split
        write_split_shards(
            root / "images.h5",
            root / "catalogue.parquet",
            root / "splits.csv",
            split,
            shards[split],
            schema,
            examples_per_shard=8,
        )
    return SimpleNamespace(
        root=root,
        schema=schema,
        shards=shards,
        catalogue=root / "catalogue.parquet",
        images=root / "images.h5",
        splits=root / "splits.csv",
        truth=root / "mock" / "truth.parquet",
    )


@pytest.fixture(scope="session")
def tiny_full_run(tmp_path_factory) -> Path:
    """The default target (data, active-learning rounds for both strategies, learning curves)
    and the supervised `full` run, once through Snakemake on the tiny config."""

    def build(workdir: Path) -> None:
        copy_workflow(workdir)
        result = run_snakemake(
            workdir, "all", "full", "--configfile", str(TINY_CONFIG), timeout=1200
        )
        # What the terminal showed, for the tests of what a person sees.
        (workdir / "terminal.txt").write_text(result.stdout + result.stderr)

    return built_once(tmp_path_factory, "tiny_full", build)


@contextlib.contextmanager
def _workflow_api(workdir: Path, config: dict | None = None):
    """Snakemake's API for the workflow in ``workdir`` with the tiny config (and ``config`` on
    top), quiet, one core; the current directory is restored afterwards."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            yield api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[TINY_CONFIG], config=config or {}),
                snakefile=workdir / "Snakefile",
                workdir=workdir,
            )
    finally:
        os.chdir(cwd)


@contextlib.contextmanager
def parsed_workflow(workdir: Path):
    """The workflow in ``workdir`` as Snakemake parses it with the tiny config (its rules,
    their resources, which are local); nothing runs."""
    with _workflow_api(workdir) as workflow:
        yield workflow._workflow


def planned_updates(
    workdir: Path, *, config: dict | None = None, targets: tuple[str, ...] = ("all", "full")
) -> list[str]:
    """Files a dry run of the workflow in ``workdir`` would (re)create, via Snakemake's API."""
    from snakemake.settings.types import DAGSettings

    updated: list[str] = []
    with _workflow_api(workdir, config) as workflow:
        dag = workflow.dag(dag_settings=DAGSettings(targets=set(targets)))
        dag.execute_workflow(executor="local", pseudo_executor="dryrun", updated_files=updated)
    return sorted(str(f) for f in updated)
