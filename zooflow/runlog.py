"""Send a step's logging, warnings and any uncaught exception to its Snakemake log file; end a
job whose Snakemake has gone; keep two processes from writing one training state."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

# Set by rules/common.smk in the Snakemake process, inherited by every job it starts.
SNAKEMAKE_PROCESS = "ZOOFLOW_SNAKEMAKE_PROCESS"


@contextlib.contextmanager
def log_to(
    path: str | Path, level: int = logging.INFO, *, quiet_imports: Sequence[str] = ()
) -> Iterator[logging.Logger]:
    """Send everything the step prints to ``path`` for the duration: logging, warnings, Keras and
    TensorFlow output, and a failure's traceback, once.

    Snakemake's terminal shows only its own job lines; it points users at a failed job's log file
    (and prints it with ``--show-failed-logs``), so the reason must be in it, and only there: a
    failure is logged with its traceback and the step exits with status 1 without Python
    printing it again. The job also ends if the Snakemake that started it dies.

    ``quiet_imports`` (``["tensorflow"]``) are imported first with native stderr silenced:
    TensorFlow's start-up banners (oneDNN, CUDA, absl) are printed by C++ as it loads, before
    any setting can turn them off. A failed import still raises, and is logged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    restore = _print_to(path)
    handler = logging.StreamHandler(sys.stderr)  # stderr now writes to the log file
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    logging.captureWarnings(True)
    end_with_snakemake()
    try:
        for module in quiet_imports:
            _import_quietly(module)
        yield logging.getLogger("zooflow")
    except Exception as err:
        logging.getLogger("zooflow").error(
            "step failed:\n%s", "".join(traceback.format_exception(err)).rstrip()
        )
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        restore()


def _print_to(path: Path):
    """Point this process's stdout and stderr (file descriptors 1 and 2, so C++ output too) at
    ``path``; returns what puts them back."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    log_file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    saved = [os.dup(1), os.dup(2)]
    os.dup2(log_file, 1)
    os.dup2(log_file, 2)
    os.close(log_file)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # keep printed lines in order with the log's

    def restore() -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)

    return restore


def _import_quietly(module: str) -> None:
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        importlib.import_module(module)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def epoch_line(epoch: int, epochs: int, logs: dict, seconds: float) -> str:
    """'epoch 3/120: loss 12.3, val_loss 11.2, 1.4 s' (epochs counted from 1)."""
    losses = ", ".join(f"{name} {logs[name]:.4g}" for name in ("loss", "val_loss") if name in logs)
    return f"epoch {epoch + 1}/{epochs}: {losses}, {seconds:.1f} s"


def training_outcome(val_losses: Sequence[float], epochs: int, patience: int) -> str:
    """The best epoch and why training stopped, from the validation losses of every epoch."""
    best = min((loss, i) for i, loss in enumerate(val_losses) if loss == loss)[1]  # NaN != NaN
    ran = len(val_losses)
    outcome = f"best epoch {best + 1} of {ran} (val_loss {val_losses[best]:.4g}); "
    if ran >= epochs:
        return outcome + f"ran all {epochs} epochs (train.epochs)"
    return outcome + (
        f"stopped early: val_loss had not improved for {ran - 1 - best} epochs "
        f"(train.patience {patience})"
    )


# --- progress of a long step ---------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Log how far a long step has got, at every tenth of the way: count, rate, time left.

    ``advance(n)`` after each piece of work; ``iterate(items)`` does it for a loop. A jump over
    several tenths logs once.
    """

    def __init__(self, what: str, total: int, unit: str = "galaxies", steps: int = 10) -> None:
        self.what, self.total, self.unit, self.steps = what, int(total), unit, steps
        self.done = 0
        self.reported = 0  # tenths already logged
        self.started = time.monotonic()
        self.log = logging.getLogger("zooflow.progress")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.total <= 0:
            return
        reached = min(self.steps, self.done * self.steps // self.total)
        if reached <= self.reported:
            return
        self.reported = reached
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (
            f"done in {_duration(elapsed)}"
            if self.done >= self.total
            else f"about {_duration((self.total - self.done) / rate)} left"
        )
        self.log.info(
            "%s: %d/%d %s (%d%%), %.3g %s/s, %s",
            self.what,
            self.done,
            self.total,
            self.unit,
            100 * min(self.done, self.total) // self.total,
            rate,
            self.unit,
            left,
        )

    def iterate(self, items: Iterable, size=lambda item: 1) -> Iterator:
        for item in items:
            yield item
            self.advance(size(item))


# --- a job ends with its Snakemake ----------------------------------------------------------


def _process_state(pid: int | str) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) of a process, from /proc; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (command)": state is field 3
    return fields[0], fields[19]  # start time is field 22


def process_marker(pid: int | None = None) -> str:
    """``host:pid:start`` of a process (this one by default): names it even after pid reuse."""
    pid = os.getpid() if pid is None else pid
    state = _process_state(pid)
    return f"{socket.gethostname()}:{pid}:{state[1] if state else ''}"


def _alive(marker: str) -> bool:
    _, pid, start = marker.split(":")
    state = _process_state(pid)
    # A killed process stays a zombie ("Z") until its parent collects it: gone all the same.
    return state is not None and state[1] == start and state[0] not in ("Z", "X")


def _stop_children() -> None:
    """SIGTERM this process's own children (process-pool workers) before it exits."""
    import signal

    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                    os.kill(int(entry.name), signal.SIGTERM)


def end_with_snakemake(poll_seconds: float = 1.0) -> threading.Thread | None:
    """Stop this job when the Snakemake process that started it has died (Linux, same host).

    A job is a grandchild of Snakemake (through a shell), so a ``kill -9`` of Snakemake would
    leave it running: a training would go on holding its files and the rerun would fail on
    them. A watcher thread polls the Snakemake process named in ``ZOOFLOW_SNAKEMAKE_PROCESS``
    and ends the job within ``poll_seconds`` of its death. Elsewhere (no /proc, another host,
    no Snakemake) it does nothing.
    """
    marker = os.environ.get(SNAKEMAKE_PROCESS, "")
    if marker.count(":") != 2 or marker.split(":")[0] != socket.gethostname():
        return None
    if not Path("/proc/self/stat").exists():
        return None

    def watch() -> None:
        while _alive(marker):
            time.sleep(poll_seconds)
        logging.getLogger("zooflow").error(
            "Snakemake (pid %s) has ended, so this job stops too", marker.split(":")[1]
        )
        _stop_children()
        os._exit(1)

    thread = threading.Thread(target=watch, name="end-with-snakemake", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def exclusive(path: str | Path, *, wait_seconds: float = 30.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs.

    Two processes must never write one training state (an earlier job left running would hold
    its HDF5 files). A holder that is ending is waited for; one still alive after
    ``wait_seconds`` is named, with how to stop it. The lock dies with its process, so it is
    never stale.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise RuntimeError(
                        f"{path} is held by process {holder}, another job still writing this "
                        f"training's state (left running by an earlier Snakemake?). Stop it "
                        f"(kill {holder}) and run again."
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
