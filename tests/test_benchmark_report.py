"""What the active-learning benchmarks print about where they ran (benchmarks/_report.py)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd
from _report import machine_line, print_study

REPO = Path(__file__).resolve().parents[1]


def test_a_study_says_when_on_what_and_at_which_commit_it_was_measured(tmp_path, capsys):
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    line = machine_line()
    assert line.startswith(f"measured {date.today().isoformat()} at commit ")
    assert commit[:7] in line
    assert f"{os.cpu_count()} logical CPUs" in line
    assert re.search(r"; tensorflow(-cpu)? 2\.\d+", line), line

    curves = pd.DataFrame(
        {"strategy": ["random"] * 2, "seed": [1, 2], "round": [0, 0], "n_labelled": [10, 10]}
    )
    (tmp_path / "al").mkdir()
    curves.assign(rmse=[0.2, 0.4]).to_csv(tmp_path / "al" / "learning_curves.csv", index=False)
    print_study(tmp_path)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("measured ")  # first, above the figures it qualifies
    assert "learning curves, mean over seeds 1, 2:" in printed and any(
        "0.3" in row for row in printed
    )
    # A study that ran for an hour names the commit it started on, taken before the copy.
    started = "measured 2026-12-04 at commit abc1234 on a CPU"
    print_study(tmp_path, measured=started)
    assert capsys.readouterr().out.splitlines()[0] == started
