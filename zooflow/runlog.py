"""Send a step's logging, warnings and any uncaught exception to its Snakemake log file; end a
job whose Snakemake has gone; keep two processes from writing one training state."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

# Set by rules/common.smk in the Snakemake process, inherited by every job it starts.
SNAKEMAKE_PROCESS = "ZOOFLOW_SNAKEMAKE_PROCESS"


@contextlib.contextmanager
def log_to(path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Log to ``path`` for the duration; a failure's traceback lands there too, once.

    Snakemake points users at a failed job's log file (and prints it with
    ``--show-failed-logs``), so the reason must be in it, and only there: a failure is logged
    with its traceback and the step exits with status 1 without Python printing it again. The
    job also ends if the Snakemake that started it dies.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    logging.captureWarnings(True)
    end_with_snakemake()
    try:
        yield logging.getLogger("zooflow")
    except Exception as err:
        logging.getLogger("zooflow").error(
            "step failed:\n%s", "".join(traceback.format_exception(err)).rstrip()
        )
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        handler.close()


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


def hold_lock(path: str | Path, *, wait_seconds: float = 30.0):
    """Take an exclusive lock on ``path`` for as long as the returned file stays open.

    Two processes must never write one training state (an earlier job left running would
    hold its HDF5 files). A holder that is ending is waited for; one still alive after
    ``wait_seconds`` is named, with how to stop it. The lock dies with its process, so it is
    never stale.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # the open file is the lock
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
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
    return handle
