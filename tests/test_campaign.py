"""A real campaign, as README walks through it: to_label.csv out, volunteers' votes in, next round.

A published round is frozen: votes that arrive after the next round was published join the round
after it, and the list volunteers are working on never changes under them.
"""

import shutil

import pandas as pd
import pytest

from conftest import TINY_CONFIG, run_snakemake
from zooflow.schema import load_schema

pytestmark = pytest.mark.slow


def test_a_campaign_round_trip_through_snakemake_with_late_votes(tiny_data_run, tmp_path):
    workdir = tmp_path / "wf"
    shutil.copytree(tiny_data_run, workdir, symlinks=True)  # its mock survey is the campaign's
    catalogue = pd.read_csv(workdir / "results" / "data" / "mock" / "catalogue.csv")
    votes = [c for c in catalogue.columns if c not in ("id_str", "file_loc")]
    hidden = catalogue.sample(frac=0.6, random_state=0)["id_str"]
    blanked = catalogue.copy()
    blanked.loc[blanked["id_str"].isin(hidden), votes] = None
    blanked.to_csv(workdir / "campaign_catalogue.csv", index=False)
    (workdir / "campaign.yaml").write_text(
        "data: {source: catalogue, catalogue: campaign_catalogue.csv,"
        " images: results/data/mock/images}\n"
        "active_learning: {oracle: campaign, strategies: [bald], seeds: [42], rounds: 3}\n"
    )
    configs = ("--configfile", str(TINY_CONFIG), str(workdir / "campaign.yaml"))

    run_snakemake(workdir, *configs)
    to_label = pd.read_csv(workdir / "campaign" / "round_0" / "to_label.csv")
    assert list(to_label.columns[:4]) == ["rank", "id_str", "file_loc", "score"]
    assert "mi" in to_label.columns and any(c.startswith("mi_") for c in to_label.columns)
    assert len(to_label) == 8  # acquire_per_round in the tiny config
    assert set(to_label["id_str"]) <= set(hidden)  # only galaxies without votes are asked
    assert not (workdir / "campaign" / "round_1").exists()  # waits for the volunteers

    answered = to_label["id_str"].head(6)  # two galaxies get no votes this time
    truth = catalogue.set_index("id_str").loc[answered, votes]
    truth.to_csv(workdir / "campaign" / "round_0" / "votes.csv")
    run_snakemake(workdir, *configs)

    round_dir = workdir / "results" / "al" / "bald" / "seed_42"
    before = set(pd.read_csv(round_dir / "round_0" / "labelled.csv")["id_str"])
    after = pd.read_csv(round_dir / "round_1" / "labelled.csv").set_index("id_str")
    assert set(after.index) == before | set(answered)
    label_cols = load_schema("decals_dr5").label_cols
    assert (after.loc[answered, label_cols].to_numpy() == truth[label_cols].to_numpy()).all()
    waiting = set(pd.read_csv(round_dir / "round_1" / "unlabelled.csv")["id_str"])
    assert set(to_label["id_str"].tail(2)) <= waiting  # unanswered galaxies return to the pool
    next_round = pd.read_csv(workdir / "campaign" / "round_1" / "to_label.csv")
    assert not set(next_round["id_str"]) & set(answered)

    # Late votes: the two galaxies left out of round 0's upload get theirs after round 1 was
    # published. Round 1 is frozen, so nothing is rebuilt; they wait for round 2.
    published = (workdir / "campaign" / "round_1" / "to_label.csv").read_bytes()
    model_1 = (round_dir / "round_1" / "model.keras").read_bytes()
    late = to_label["id_str"].tail(2)
    catalogue.set_index("id_str").loc[to_label["id_str"], votes].to_csv(
        workdir / "campaign" / "round_0" / "votes.csv"
    )
    plan = run_snakemake(workdir, "-n", *configs)
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout

    # Round 1's volunteers answer every galaxy they were shown: all accepted, and round 2
    # trains on round 1's set, the late votes and round 1's votes. (Only round 2's training set
    # is built here: what follows from it is the same as for round 1.)
    asked_1 = next_round["id_str"]
    catalogue.set_index("id_str").loc[asked_1, votes].to_csv(
        workdir / "campaign" / "round_1" / "votes.csv"
    )
    run_snakemake(workdir, "results/al/bald/seed_42/round_2/labelled.csv", *configs)
    assert (workdir / "campaign" / "round_1" / "to_label.csv").read_bytes() == published
    assert (round_dir / "round_1" / "model.keras").read_bytes() == model_1
    labelled_1 = set(pd.read_csv(round_dir / "round_1" / "labelled.csv")["id_str"])
    labelled_2 = set(pd.read_csv(round_dir / "round_2" / "labelled.csv")["id_str"])
    assert labelled_2 == labelled_1 | set(late) | set(asked_1)
    logs = workdir / "logs" / "al" / "bald" / "seed_42" / "round_2"
    rejected = pd.read_csv(logs / "rejected_votes.csv")
    assert rejected.empty, rejected.to_string()
