"""Runs a person can read and trust: jobs end with their Snakemake, logs hold what jobs print."""

import logging
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from conftest import FIRST_STRATEGY as FIRST
from conftest import TINY_CONFIG, run_snakemake
from zooflow.runlog import Progress, exclusive, training_outcome


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
def test_killing_snakemake_ends_its_training_and_the_rerun_succeeds(tiny_full_run, tmp_path):
    workdir = tmp_path / "wf"
    # The tiny run with its pretrained features, less the supervised run trained here.
    shutil.copytree(tiny_full_run, workdir, symlinks=True)
    shutil.rmtree(workdir / "results" / "full")
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
        "from zooflow.runlog import exclusive\n"
        "with exclusive(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
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
    with exclusive(lock, wait_seconds=30):
        pass
    assert time.monotonic() - started > 0.5  # it waited for the holder to end
    ending.wait()

    alive = holder(60)
    try:
        with pytest.raises(RuntimeError, match=rf"held by process {alive.pid}.*kill {alive.pid}"):
            with exclusive(lock, wait_seconds=0.5):
                pass
    finally:
        alive.kill()
        alive.wait()


# What jobs print and a person should not find on Snakemake's terminal.
JOB_OUTPUT = ("oneDNN", "absl::", "INFO zooflow", "Epoch ", "tensorflow", "Traceback", "Warning")


@pytest.mark.slow
def test_the_terminal_shows_snakemakes_lines_and_the_logs_hold_the_jobs_output(tiny_full_run):
    terminal = (tiny_full_run / "terminal.txt").read_text()
    for marker in JOB_OUTPUT:
        assert marker not in terminal, f"{marker!r} on the terminal"
    logs = tiny_full_run / "logs"
    for log in logs.rglob("*.log"):
        assert "oneDNN" not in log.read_text(), f"TensorFlow's banner in {log}"

    # Training: one line per epoch with its losses and time, then the best epoch and why it ended.
    history = pd.read_csv(tiny_full_run / "results" / "full" / "history.csv")
    train_log = (logs / "full" / "train.log").read_text()
    epochs = re.findall(r"epoch (\d+)/2: loss [\d.]+, val_loss [\d.]+, [\d.]+ s", train_log)
    assert epochs == [str(i + 1) for i in range(len(history))]
    best = int(history["val_loss"].idxmin()) + 1
    assert f"best epoch {best} of {len(history)}" in train_log
    assert "ran all 2 epochs (train.epochs)" in train_log

    # Long steps say how far they are, with a rate.
    for log, what in [
        ("simulate.log", "simulate: rendering"),
        ("preprocess.log", "preprocess"),
        ("shards.log", "shards"),
        ("full/predict_0.log", "predict test"),
        (
            f"al/{FIRST}/seed_42/round_0/acquire.log",
            r"(entropies of \d+ galaxies|EPIG against \d+ target galaxies)",
        ),
    ]:
        text = (logs / log).read_text()
        assert re.search(rf"{what}: \d+/\d+ \w+ \(100%\), [\d.e+]+ \w+/s, done in", text), log


def test_progress_is_logged_at_every_tenth_with_a_rate_and_the_time_left(caplog):
    progress = Progress("scoring", 200, "galaxies")
    with caplog.at_level(logging.INFO, logger="zooflow.progress"):
        for _ in range(100):
            progress.advance(2)
    lines = caplog.messages
    assert [re.search(r"\((\d+)%\)", line).group(1) for line in lines] == [
        str(p) for p in range(10, 101, 10)
    ]
    assert re.fullmatch(
        r"scoring: 20/200 galaxies \(10%\), [\d.e+]+ galaxies/s, about \d+ s left", lines[0]
    )
    assert lines[-1].startswith("scoring: 200/200 galaxies (100%)") and "done in" in lines[-1]


def test_a_training_that_stops_early_says_which_epoch_was_best_and_why():
    losses = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 3.4]
    assert training_outcome(losses, epochs=20, patience=4) == (
        "best epoch 3 of 7 (val_loss 3); stopped early: val_loss had not improved for 4 epochs "
        "(train.patience 4)"
    )


@pytest.mark.slow
def test_the_end_of_a_run_says_what_it_found_and_how_to_see_the_report(tiny_full_run):
    terminal = (tiny_full_run / "terminal.txt").read_text()
    end = terminal[terminal.index("zooflow: the run is complete.") :]
    assert f"Labels {FIRST} saved against random" in end
    assert "Supervised run (results/full" in end
    assert f"snakemake --report report.html all full --configfile {TINY_CONFIG}" in end
    assert "nan%" not in end
