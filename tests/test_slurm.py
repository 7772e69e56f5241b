"""The workflow through Snakemake's SLURM executor on a real single-node SLURM cluster.

The cluster (tests/slurm_cluster.py) starts once per session. The tests check, against
slurmctld itself (``scontrol show job``), that every rule job became exactly one SLURM job
that completed, that exactly the GPU rules asked for a GPU (``--gpus=1`` is recorded as
``TresPerJob=gres:gpu:1``) and, for the real workflow, that the SLURM run wrote the same
outputs as a local run with the same seed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from slurm_cluster import (  # noqa: F401  (slurm_cluster_fixture is the session fixture)
    MIN_JOB_AGE_SECONDS,
    NODE_MEMORY_FRACTION,
    STATUS_CHECK_SECONDS,
    ClusterLayout,
    NodeHardware,
    SlurmCluster,
    SnakemakeRun,
    parse_slurmd_hardware,
    render_gres_conf,
    render_slurm_conf,
    run_snakemake,
    slurm_cluster_fixture,
)

from conftest import FIRST_STRATEGY, REFERENCE_CORES, copy_workflow, parsed_workflow

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm"
DEFAULT_PROFILE = REPO / "profiles" / "default"
TINY_CONFIG = REPO / "tests" / "data" / "tiny.yaml"

# The real-workflow test runs one active-learning round of the tiny config through the profile
# on top of the suite's local data stage (6 SLURM jobs). Each pays some SLURM polling: the plugin
# adds 10 s to its polling interval after every status query that finds no job finished, so a
# 15-s job is seen finished after 36 s. The default target from the mock survey on (39 SLURM
# jobs) took 11.7 minutes on a 2-core machine (AMD EPYC); this round takes 4.4 there.
WORKFLOW_GPU_RULES = frozenset({"pretrain", "train", "predict"})
DATA_STAGE_RULES = frozenset({"simulate", "ingest", "preprocess", "split", "shards"})
# The rules of a round that run in Snakemake's own process (`localrule: True`).
ROUND_LOCAL_RULES = frozenset({"start_rounds", "reveal"})

# The plugin can otherwise poll forever, so a run is killed at this limit.
RUN_TIMEOUT_S = 1500

# Flags every SLURM run needs on this accounting-less cluster (see slurm_cluster.py).
SLURM_RUN_FLAGS = (
    "--executor",
    "slurm",
    # Only profiles/slurm: Snakemake would otherwise also load profiles/default (the
    # workstation profile) as the workflow profile, and its keys would win.
    "--workflow-profile",
    "none",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    str(STATUS_CHECK_SECONDS),
    # Accepted but unused by plugin 2.8.0 (it still tries `sacct` once and goes on without).
    "--slurm-no-account",
    # Successful jobs' logs are deleted by default; the tests read their job IDs from them.
    "--slurm-keep-successful-logs",
    # Fail fast instead of retrying twice (profile default) when something is broken.
    "--retries",
    "0",
)

TOY_SNAKEFILE = '''
import json
import os

import numpy as np

SEED = int(config["seed"])
SPLITS = ["a", "b"]


def write_marker(path):
    """Record where this job ran: its SLURM job ID and the GPU SLURM gave it (if any)."""
    keys = ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")
    with open(path, "w") as stream:
        json.dump({key: os.environ.get(key, "") for key in keys}, stream)


rule all:
    input:
        expand("results/predictions_{split}.npy", split=SPLITS),


rule make_data:
    output:
        data="results/data.npy",
        marker="markers/make_data.json",
    resources:
        mem_mb=500,
    run:
        rng = np.random.default_rng(SEED)
        features = rng.normal(size=(64, 2))
        target = features @ np.array([1.5, -0.5]) + 0.1 * rng.normal(size=64)
        np.save(output.data, np.column_stack([features, target]))
        write_marker(output.marker)


rule train:
    input:
        "results/data.npy",
    output:
        weights="results/weights.npy",
        marker="markers/train.json",
    resources:
        gpu=1,
        mem_mb=500,
    run:
        table = np.load(input[0])
        weights, *_ = np.linalg.lstsq(table[:, :2], table[:, 2], rcond=None)
        np.save(output.weights, weights)
        write_marker(output.marker)


rule predict:
    input:
        data="results/data.npy",
        weights="results/weights.npy",
    output:
        predictions="results/predictions_{split}.npy",
        marker="markers/predict-{split}.json",
    resources:
        gpu=1,
        mem_mb=500,
    run:
        table = np.load(input.data)
        offset = SPLITS.index(wildcards.split)
        np.save(output.predictions, table[:, :2] @ np.load(input.weights) + offset)
        write_marker(output.marker)
'''
TOY_GPU_RULES = frozenset({"train", "predict"})
TOY_JOBS_PER_RULE = {"make_data": 1, "train": 1, "predict": 2}


# ---------------------------------------------------------------------------------------
# Helpers


def slurm_submissions(workdir: Path) -> dict[str, list[str]]:
    """SLURM job IDs per rule, from the plugin's logs .snakemake/slurm_logs/rule_R/[wc/]ID.log."""
    submissions: dict[str, list[str]] = {}
    logs = workdir / ".snakemake" / "slurm_logs"
    for log in sorted(logs.rglob("*.log")):
        rule_dir = log.relative_to(logs).parts[0]
        assert rule_dir.startswith("rule_"), f"unexpected SLURM log {log}"
        assert log.stem.isdigit(), f"SLURM log {log} is not named after a job ID"
        submissions.setdefault(rule_dir.removeprefix("rule_"), []).append(log.stem)
    return submissions


def submitted_job_ids(snakemake_output: str) -> list[str]:
    """Job IDs from the plugin's 'Job N has been submitted with SLURM jobid X' lines."""
    return re.findall(r"has been submitted with SLURM jobid (\d+)", snakemake_output)


def run_on_slurm(cluster: SlurmCluster, args: list[str], workdir: Path) -> SnakemakeRun:
    """Run Snakemake with the SLURM flags; after a timeout, cancel the jobs it left queued."""
    run = run_snakemake(
        [*args, *SLURM_RUN_FLAGS], cwd=workdir, env=cluster.client_env(), timeout_s=RUN_TIMEOUT_S
    )
    if run.timed_out:
        cluster.cancel_all_jobs()
    return run


def failure_report(run: SnakemakeRun, cluster: SlurmCluster) -> str:
    return (
        f"{' '.join(run.command)}\nexit {run.returncode} after {run.seconds:.0f} s"
        f"{' (killed at the timeout)' if run.timed_out else ''}\n"
        f"--- snakemake output ---\n{run.output[-6000:]}\n{cluster.diagnostics()}"
    )


def job_span(job: dict[str, str]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["StartTime"]), datetime.fromisoformat(job["EndTime"])


def assert_never_overlapped(jobs: list[dict[str, str]]) -> None:
    """The node has one GPU, so GPU jobs must run one after another (1 s clock resolution)."""
    spans = sorted(job_span(job) for job in jobs)
    for (_, earlier_end), (later_start, _) in zip(spans, spans[1:], strict=False):
        assert later_start >= earlier_end, f"GPU jobs overlapped: {jobs}"


def is_frozen_round(job: dict[str, str]) -> bool:
    """A round's job (its wildcards name a round); the tiny config's rounds freeze the trunk."""
    return "round_" in job["Comment"]


def assert_jobs_ran_on_slurm(
    cluster: SlurmCluster,
    workdir: Path,
    snakemake_output: str,
    expected_jobs_per_rule: dict[str, int],
    gpu_rules: frozenset[str],
) -> dict[str, list[dict[str, str]]]:
    """Every rule job was one completed SLURM job, in `workdir`; only `gpu_rules` got a GPU.

    Returns slurmctld's record (``scontrol show job``) of each job, per rule.
    """
    submissions = slurm_submissions(workdir)
    assert {rule: len(ids) for rule, ids in submissions.items()} == expected_jobs_per_rule
    all_ids = [job_id for ids in submissions.values() for job_id in ids]
    assert sorted(submitted_job_ids(snakemake_output)) == sorted(all_ids)
    assert len(set(all_ids)) == len(all_ids), "a SLURM job ID was reused"
    records: dict[str, list[dict[str, str]]] = {}
    for rule, ids in submissions.items():
        for job_id in ids:
            job = cluster.show_job(job_id)
            assert job["JobState"] == "COMPLETED", (rule, job)
            assert job["ExitCode"] == "0:0", (rule, job)
            assert job["Partition"] == cluster.partition, (rule, job)
            assert job["Comment"].startswith(f"rule_{rule}"), (rule, job)
            assert Path(job["WorkDir"]) == workdir, (rule, job)
            # The plugin turns `resources: gpu=1` into `sbatch --gpus=1`, which slurmctld
            # records as TresPerJob=gres:gpu:1 (`gres="gpu:1"` would be TresPerNode).
            asked_for_gpu = any(
                job.get(field, "") == "gres:gpu:1" for field in ("TresPerJob", "TresPerNode")
            )
            # An active-learning round that keeps its pretrained features trains only the head
            # (the default): no GPU, one core.
            assert asked_for_gpu == (rule in gpu_rules and not is_frozen_round(job)), (rule, job)
            records.setdefault(rule, []).append(job)
    assert_never_overlapped(
        [job for rule in gpu_rules for job in records.get(rule, []) if not is_frozen_round(job)]
    )
    return records


# Written fresh by every run whatever the seed: timings, TensorBoard event files.
UNCOMPARABLE_DIRS = frozenset({"benchmarks", "tensorboard"})


def comparable_bytes(path: Path, *run_folders: Path) -> bytes:
    """A file's bytes with its run's folders written as ``<workdir>``, or for a Keras archive
    its weights file (config.json holds object ids and metadata.json the save date, both
    different in every run). Catalogue tables carry image paths inside the folder that ran
    the data stage."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return archive.read("model.weights.h5")
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        text = table.to_csv(index=False)
    else:
        content = path.read_bytes()
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return content
    for folder in sorted(map(str, run_folders), key=len, reverse=True):
        text = text.replace(folder, "<workdir>")
    return text.encode("utf-8")


def assert_same_outputs(
    left: Path,
    right: Path,
    *,
    left_may_have_more: bool = False,
    right_data_from: Path | None = None,
) -> list[str]:
    """Every comparable file under `right` exists under `left` with identical content, and
    (unless `left_may_have_more`: a reference run of more targets) the other way round.
    `right_data_from`: the run folder `right`'s data stage was copied from."""
    right_folders = [right.parent] + ([right_data_from] if right_data_from else [])

    def comparable(root: Path) -> list[Path]:
        return sorted(
            path.relative_to(root)
            for path in root.rglob("*")
            if path.is_file()
            and not UNCOMPARABLE_DIRS & set(path.relative_to(root).parts)
            and path.name != ".snakemake_timestamp"
        )

    files = comparable(right)
    if left_may_have_more:
        missing = sorted(set(map(str, files)) - set(map(str, comparable(left))))
        assert not missing, f"the reference run has no {missing}"
    else:
        assert files == comparable(left)
    differing = [
        str(path)
        for path in files
        if comparable_bytes(left / path, left.parent)
        != comparable_bytes(right / path, *right_folders)
    ]
    assert not differing, f"outputs differ between the local and the SLURM run: {differing}"
    return [str(path) for path in files]


def job_counts_from_dry_run(output: str) -> dict[str, int]:
    """The 'Job stats' table of `snakemake -n`: rule -> number of jobs (without 'total')."""
    assert "Job stats:" in output, output[-3000:]
    counts = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("total", None)
    # `all` only gathers inputs: Snakemake finishes it itself and submits nothing.
    counts.pop("all", None)
    return counts


# ---------------------------------------------------------------------------------------
# Fast checks of what the cluster and the profiles are built from


# On a cluster every job costs a queue wait and a Snakemake start on the node; the steps that
# only move small tables (catalogue-sized CSVs, a YAML tree, one model file, summary plots) run
# in Snakemake's own process instead. None reads predictions, images by the survey or trains.
SMALL_STEP_RULES = frozenset(
    {
        "resolve_tree",
        "resolve_finetune_tree",
        "start_rounds",
        "reveal",
        "to_label",
        "full_training_set",
        "share_round_0",
        "learning_curves",
        "gallery",
    }
)


def test_only_the_small_steps_run_in_snakemake_s_own_process_on_a_cluster(tmp_path):
    with parsed_workflow(copy_workflow(tmp_path / "wf")) as workflow:
        rules = {rule.name: rule for rule in workflow.rules}
        local = {name for name in rules if name in workflow._localrules}
    assert local == SMALL_STEP_RULES | ROUND_LOCAL_RULES
    for name in local:
        resources = rules[name].resources
        assert resources["_cores"] == 1 and "gpu" not in resources, (name, resources)
        assert "mem_mb" not in resources or not callable(resources["mem_mb"]), name


def test_slurmd_hardware_line_becomes_a_node_with_one_fake_gpu(tmp_path):
    node = parse_slurmd_hardware(
        "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 "
        "RealMemory=24105\nUpTime=0-00:05:36\n"
    )
    assert node == NodeHardware("vm", 2, 1, 1, 2, 1, 24105)
    conf = render_slurm_conf(ClusterLayout(tmp_path), node, slurmctld_port=7001, slurmd_port=7002)
    settings = [line.split(" ")[0] for line in conf.splitlines()]
    assert "GresTypes=gpu" in settings
    assert "SelectType=select/cons_tres" in settings  # --gpus needs cons_tres
    assert "AccountingStorageType=accounting_storage/none" in settings
    assert "SlurmctldPort=7001" in settings and "SlurmdPort=7002" in settings
    assert f"AuthInfo=socket={tmp_path / 'munge' / 'munge.socket'}" in settings
    node_line = next(line for line in conf.splitlines() if line.startswith("NodeName=")).split()
    assert "Gres=gpu:1" in node_line
    assert f"RealMemory={int(24105 * NODE_MEMORY_FRACTION)}" in node_line
    assert {"CPUs=2", "CoresPerSocket=2", "ThreadsPerCore=1"} <= set(node_line)
    min_job_age = int(re.search(r"^MinJobAge=(\d+)$", conf, re.M).group(1))
    # The plugin only uses squeue for status when MinJobAge >= 3 x the initial interval.
    assert min_job_age == MIN_JOB_AGE_SECONDS >= 3 * STATUS_CHECK_SECONDS
    assert render_gres_conf().split() == ["Name=gpu", "File=/dev/null"]


def test_slurmd_hardware_line_without_memory_is_rejected():
    with pytest.raises(RuntimeError, match="RealMemory"):
        parse_slurmd_hardware("NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2")


def test_profiles_carry_the_settings_each_environment_needs():
    slurm = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["jobs"] >= 1 and slurm["retries"] >= 1 and slurm["latency-wait"] >= 30
    assert isinstance(slurm["cores"], int)  # rules use `threads: workflow.cores`
    assert set(slurm["default-resources"]) == {
        "slurm_partition",
        "slurm_account",
        "runtime",
        "mem_mb",
        "cpus_per_task",
    }
    assert "resources" not in slurm  # no global GPU limit: SLURM schedules the GPUs
    default = yaml.safe_load((DEFAULT_PROFILE / "config.yaml").read_text())
    assert default["cores"] == "all"
    assert default["resources"] == {"gpu": 1}
    assert default["keep-going"] is False
    assert default["rerun-incomplete"] is True
    assert default["printshellcmds"] is True
    assert "executor" not in default


def test_a_run_past_its_timeout_is_killed_with_its_whole_process_group(tmp_path):
    # The SLURM plugin can poll forever and ignores SIGTERM; the guard must leave neither
    # Snakemake nor its jobs behind.
    (tmp_path / "Snakefile").write_text(
        'rule hang:\n    output: "never"\n    shell: "echo $$ > job.pid; exec sleep 120"\n'
    )
    run = run_snakemake(["--cores", "1"], cwd=tmp_path, env=os.environ, timeout_s=12)
    assert run.timed_out and run.returncode == -signal.SIGKILL
    assert 12 <= run.seconds < 40
    job_pid = int((tmp_path / "job.pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(job_pid):
        time.sleep(0.2)
    assert not _alive(job_pid), "the job's process survived the timeout"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------------------------------
# The real cluster


@pytest.mark.slurm
@pytest.mark.slow
def test_cluster_node_offers_its_cpus_memory_and_one_gpu(slurm_cluster: SlurmCluster):
    node = slurm_cluster.run_client(
        "scontrol", "show", "node", "--oneliner", slurm_cluster.node.name
    )
    fields = dict(re.findall(r"(\w+)=(\S*)", node))
    assert fields["State"] == "IDLE"
    assert fields["Gres"] == "gpu:1"
    assert int(fields["CPUTot"]) == slurm_cluster.node.cpus
    assert int(fields["RealMemory"]) == int(
        slurm_cluster.node.real_memory_mb * NODE_MEMORY_FRACTION
    )


@pytest.mark.slurm
@pytest.mark.slow
def test_toy_workflow_runs_each_job_as_a_slurm_job_with_a_gpu_only_where_asked(
    slurm_cluster: SlurmCluster, tmp_path: Path
):
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    run = run_on_slurm(
        slurm_cluster, ["--profile", str(SLURM_PROFILE), "--config", "seed=7"], tmp_path
    )
    assert run.returncode == 0 and not run.timed_out, failure_report(run, slurm_cluster)

    records = assert_jobs_ran_on_slurm(
        slurm_cluster, tmp_path, run.output, TOY_JOBS_PER_RULE, TOY_GPU_RULES
    )
    # The rules' resources reached sbatch: 500 MB each, one CPU per Snakemake thread.
    for jobs in records.values():
        assert {(job["MinMemoryNode"], job["NumCPUs"]) for job in jobs} == {("500M", "1")}
    # Both predict jobs were queued together; SLURM held the second until the GPU was free.
    first, second = sorted(records["predict"], key=job_span)
    assert datetime.fromisoformat(second["SubmitTime"]) < job_span(first)[1]
    assert job_span(second)[0] >= job_span(first)[1]

    # Inside each job: the SLURM job ID slurmctld gave it, and a GPU only for GPU rules.
    job_ids = {rule: [job["JobId"] for job in jobs] for rule, jobs in records.items()}
    markers = sorted((tmp_path / "markers").glob("*.json"))
    assert len(markers) == sum(TOY_JOBS_PER_RULE.values())
    for marker in markers:
        rule = marker.stem.split("-")[0]  # markers/RULE[-WILDCARD].json
        seen = json.loads(marker.read_text())
        assert seen["SLURM_JOB_ID"] in job_ids[rule], (marker.name, seen)
        assert (seen["CUDA_VISIBLE_DEVICES"] == "0") == (rule in TOY_GPU_RULES), (marker, seen)

    # And the jobs computed what the rules say.
    table = np.load(tmp_path / "results" / "data.npy")
    weights = np.load(tmp_path / "results" / "weights.npy")
    np.testing.assert_allclose(weights, [1.5, -0.5], atol=0.1)
    for offset, split in enumerate(("a", "b")):
        predictions = np.load(tmp_path / "results" / f"predictions_{split}.npy")
        np.testing.assert_allclose(predictions, table[:, :2] @ weights + offset)


@pytest.mark.slurm
@pytest.mark.slow
def test_real_workflow_on_slurm_matches_a_local_run(
    slurm_cluster: SlurmCluster, tiny_data_run: Path, tmp_path: Path, request
):
    """An active-learning round of the real workflow through the SLURM profile (pretraining,
    a frozen round's training, prediction, calibration, acquisition) writes exactly what the
    suite's local run of the tiny config wrote (`all` and `full`, with profiles/default picked
    up as the workflow profile, on REFERENCE_CORES). The data stage comes from the suite's local
    run of it: every SLURM job costs the plugin's status-check back-off (up to half a minute
    here), and the toy workflow above already runs CPU-only rules as SLURM jobs."""
    if slurm_cluster.node.cpus < REFERENCE_CORES:
        pytest.skip(f"the reference run used {REFERENCE_CORES} cores; the node has fewer")
    workdir = tmp_path / "slurm"
    shutil.copytree(tiny_data_run, workdir, symlinks=True)
    env = slurm_cluster.client_env()
    config_args = ["--configfile", str(TINY_CONFIG)]
    # The rules use `threads: workflow.cores`: as many as the reference run had.
    cores_args = ["--cores", str(REFERENCE_CORES)]
    targets = [f"results/al/{FIRST_STRATEGY}/seed_42/round_1/labelled.csv"]

    plan = run_snakemake([*targets, "-n", *config_args], cwd=workdir, env=env, timeout_s=120)
    assert plan.returncode == 0, failure_report(plan, slurm_cluster)
    jobs_per_rule = job_counts_from_dry_run(plan.output)
    assert not DATA_STAGE_RULES & set(jobs_per_rule), "the data stage was not reused"
    assert WORKFLOW_GPU_RULES | ROUND_LOCAL_RULES | {"calibrate", "acquire"} <= set(jobs_per_rule)

    slurm = run_on_slurm(
        slurm_cluster,
        [*targets, "--profile", "profiles/slurm", *config_args, *cores_args],
        workdir,
    )
    assert slurm.returncode == 0 and not slurm.timed_out, failure_report(slurm, slurm_cluster)
    # Asked for only now: with the suite on several workers, another one builds the reference run
    # while this one mostly waits on SLURM.
    tiny_full_run = request.getfixturevalue("tiny_full_run")
    reference_terminal = (tiny_full_run / "terminal.txt").read_text()
    assert "workflow specific profile profiles/default" in reference_terminal

    # Rules that only move small tables run in Snakemake's own process, not as SLURM jobs.
    ran_locally = set(re.findall(r"^localrule (\w+):", slurm.output, flags=re.MULTILINE))
    assert ran_locally == ROUND_LOCAL_RULES, slurm.output[-3000:]
    submitted_per_rule = {
        rule: count for rule, count in jobs_per_rule.items() if rule not in ran_locally
    }
    assert submitted_per_rule.keys() - WORKFLOW_GPU_RULES, "no CPU rule was submitted"
    records = assert_jobs_ran_on_slurm(
        slurm_cluster, workdir, slurm.output, submitted_per_rule, WORKFLOW_GPU_RULES
    )
    # `threads: workflow.cores` became --cpus-per-task through the profile's cpus_per_task
    # (pretraining trains the whole network; the tiny config's rounds only a frozen trunk's head).
    assert {job["NumCPUs"] for job in records["pretrain"]} == {str(REFERENCE_CORES)}
    assert records["train"] and not [job for job in records["train"] if not is_frozen_round(job)]
    assert {job["NumCPUs"] for job in records["train"]} == {"1"}
    compared = assert_same_outputs(
        tiny_full_run / "results",
        workdir / "results",
        left_may_have_more=True,
        right_data_from=tiny_data_run,
    )
    for produced in ("round_1/labelled.csv", "round_0/acquired.csv", "round_0/model.keras"):
        assert any(path.endswith(produced) for path in compared), (produced, compared)
    assert any(path.endswith("_predictions.h5") for path in compared), compared


def test_in_ci_an_installed_cluster_that_does_not_start_fails_instead_of_skipping(monkeypatch):
    from slurm_cluster import SlurmClusterError, cluster_did_not_start

    error = SlurmClusterError("slurmctld exited")
    monkeypatch.delenv("ZOOFLOW_CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="did not start: slurmctld exited"):
        cluster_did_not_start(error)
    monkeypatch.setenv("ZOOFLOW_CI", "1")
    with pytest.raises(pytest.fail.Exception, match="did not start: slurmctld exited"):
        cluster_did_not_start(error)
