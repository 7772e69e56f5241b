"""An active-learning study through the real workflow, on the default mock survey and a second.

Runs the default target (data -> rounds of every strategy and seed -> learning curves) with the
given config files in a scratch copy, once on the default mock survey and, with `--second`, once
more on the second mock survey (config/studies/second_survey.yaml: another seed, size and
redshift range), and prints for each: the wall time, learning curves averaged over seeds, labels
saved against the baseline with the 90% bootstrap interval over seeds and each seed's own saving
(both denominators: all labels, acquired labels), the saving had the study stopped after each
round, and the featured share of what each strategy acquired.

Run: .venv/bin/python benchmarks/active_learning.py --configfile config/studies/X.yaml [--second]
     [--only-second] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, print_study  # noqa: E402
from _workflow import copy_workflow  # noqa: E402

SECOND_SURVEY = "config/studies/second_survey.yaml"


def snakemake(workdir: Path, *args: str, cores: int) -> float:
    """Minutes the run took; stops on failure, pointing at the log."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *args]
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "a") as log:
        result = subprocess.run(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed; see {workdir / 'snakemake.log'}")
    return (time.perf_counter() - start) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="*", default=[], help="study config files")
    parser.add_argument("--second", action="store_true", help="also on the second mock survey")
    parser.add_argument("--only-second", action="store_true", help="only the second survey")
    parser.add_argument("--keep", type=Path, help="run under this folder and keep it")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-al-"))
    configs = [str((REPO / c).resolve()) for c in args.configfile]
    surveys = [] if args.only_second else [("default mock survey", [])]
    if args.second or args.only_second:
        surveys.append(("second mock survey", [str(REPO / SECOND_SURVEY)]))
    for name, survey in surveys:
        workdir = root / ("second" if survey else "default")
        measured = machine_line()  # the commit the copy below takes, not the one the run ends on
        copy_workflow(workdir)
        # One --configfile flag with every file: Snakemake keeps only the last of repeated flags.
        files = [*survey, *configs]
        minutes = snakemake(workdir, *(["--configfile", *files] if files else []), cores=args.cores)
        print(f"\n=== {name} ({' '.join(args.configfile) or 'default config'}): {minutes:.1f} min")
        print_study(workdir / "results", measured=measured)
    print(f"\nfolders under {root}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
