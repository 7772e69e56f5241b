"""Runs a person can read and trust: jobs end with their Snakemake, logs hold what jobs print."""

import shutil
import subprocess
import sys
import time

import psutil
import pytest

from conftest import TINY_CONFIG, run_snakemake
from zooflow.runlog import hold_lock


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def _jobs_running(workdir, script):
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if script in cmdline and process.info["cwd"] == str(workdir):
            found.append(process)
    return found


@pytest.mark.slow
def test_killing_snakemake_ends_its_training_and_the_rerun_succeeds(tiny_data_run, tmp_path):
    workdir = tmp_path / "wf"
    shutil.copytree(tiny_data_run, workdir)
    endless = tmp_path / "endless.yaml"
    endless.write_text("train: {epochs: 100000, patience: 100000}\n")
    state_log = workdir / "results" / "full" / "train_state" / "history.csv"
    snakemake = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", "results/full/model.keras"]
        + ["--configfile", str(TINY_CONFIG), str(endless)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    training = []
    try:
        # Killed once an epoch is backed up: the state the rerun meets is a real one.
        _wait_for(
            lambda: state_log.exists() and len(state_log.read_text().splitlines()) > 1,
            240,
            "the first epoch",
        )
        training = _jobs_running(workdir, "train.py")
        assert training, "no training job found"
        snakemake.kill()
        snakemake.wait()
        _, still_running = psutil.wait_procs(training, timeout=20)
        assert not still_running, "the training outlived its Snakemake"
    finally:
        snakemake.kill()
        for process in training:
            if process.is_running():
                process.kill()

    run_snakemake(workdir, "--unlock", "--configfile", str(TINY_CONFIG))
    run_snakemake(workdir, "results/full/model.keras", "--configfile", str(TINY_CONFIG))
    assert (workdir / "results" / "full" / "model.keras").exists()
    assert any((workdir / "results" / "full" / "tensorboard").rglob("*tfevents*"))


def test_a_training_state_lock_waits_for_an_ending_holder_and_names_a_live_one(tmp_path):
    lock = tmp_path / "train_state" / "lock"
    hold = (
        "import sys, time\n"
        "from zooflow.runlog import hold_lock\n"
        "held = hold_lock(sys.argv[1])\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )

    def holder(seconds):
        process = subprocess.Popen(
            [sys.executable, "-c", hold, str(lock), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "held"
        return process

    ending = holder(1.5)
    started = time.monotonic()
    hold_lock(lock, wait_seconds=30).close()
    assert time.monotonic() - started > 0.5  # it waited for the holder to end
    ending.wait()

    alive = holder(60)
    try:
        with pytest.raises(RuntimeError, match=rf"held by process {alive.pid}.*kill {alive.pid}"):
            hold_lock(lock, wait_seconds=0.5)
    finally:
        alive.kill()
        alive.wait()
