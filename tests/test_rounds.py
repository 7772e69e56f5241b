"""Active-learning bookkeeping: who is labelled when, what the oracle reveals, labels saved."""

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from zooflow.acquisition import acquire
from zooflow.plots import gallery_picks
from zooflow.posteriors import STRING
from zooflow.rounds import reveal, reveal_campaign, share_first_round, start_rounds
from zooflow.study import (
    collect_learning_curves,
    labels_needed,
    labels_saved,
    labels_saved_by_budget,
    labels_saved_by_strategy,
    summarise_rounds,
)


def _fake_predictions(path, ids, schema, seed=0, passes=6):
    """A predictions file in the pipeline's layout with arbitrary concentrations."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["predictions"] = rng.uniform(1, 30, size=(len(ids), schema.n_answers, passes)).astype(
            "float32"
        )
        f.create_dataset("id_str", data=np.array(ids, dtype=object), dtype=STRING)
        f["votes"] = np.zeros((len(ids), schema.n_answers), dtype="int64")
        f.create_dataset("label_cols", data=np.array(schema.label_cols, dtype=object), dtype=STRING)
        f.attrs.update(head="dirichlet", passes=passes)


def _acquire_from(survey, round_dir, strategy, n_acquire, suffix="", seed=0):
    """Acquire from ``round_dir/pool.h5``, writing scores{suffix}.csv and acquired{suffix}.csv."""
    return acquire(
        round_dir / "pool.h5",
        round_dir / "unlabelled.csv",
        survey.catalogue,
        survey.schema,
        strategy=strategy,
        n_acquire=n_acquire,
        scores_out=round_dir / f"scores{suffix}.csv",
        acquired_out=round_dir / f"acquired{suffix}.csv",
        seed=seed,
    )


@pytest.fixture()
def round_zero(tiny_survey, tmp_path):
    start_rounds(
        tiny_survey.splits,
        tiny_survey.catalogue,
        tiny_survey.schema,
        tmp_path / "labelled.csv",
        tmp_path / "unlabelled.csv",
    )
    return tmp_path


def test_round_zero_labels_the_initial_split_and_holds_back_the_pool(tiny_survey, round_zero):
    splits = pd.read_csv(tiny_survey.splits)
    labelled = pd.read_csv(round_zero / "labelled.csv")
    waiting = pd.read_csv(round_zero / "unlabelled.csv")
    assert set(labelled["id_str"]) == set(splits.loc[splits["split"] == "initial", "id_str"])
    assert set(waiting["id_str"]) == set(splits.loc[splits["split"] == "pool", "id_str"])
    # Test and validation galaxies are never in the pool, so never acquired.
    fixed = set(splits.loc[splits["split"].isin(["test", "val"]), "id_str"])
    assert not fixed & (set(waiting["id_str"]) | set(labelled["id_str"]))
    catalogue = pd.read_parquet(tiny_survey.catalogue).set_index("id_str")
    cols = tiny_survey.schema.label_cols
    np.testing.assert_array_equal(
        labelled[cols].to_numpy(), catalogue.loc[labelled["id_str"], cols].to_numpy()
    )


def test_another_strategy_shares_round_zero_only_when_its_labelled_set_is_the_same(
    round_zero, tmp_path
):
    source, copy = tmp_path / "first", tmp_path / "second"
    source.mkdir(), copy.mkdir()
    (source / "model.keras").write_bytes(b"weights")
    (source / "training_config.json").write_text('{"seed": 42}')
    labelled = pd.read_csv(round_zero / "labelled.csv")
    labelled.to_csv(source / "labelled.csv", index=False)
    # The same galaxies in another order are the same training set.
    labelled.iloc[::-1].to_csv(copy / "labelled.csv", index=False)
    share_first_round(
        source / "labelled.csv", copy / "labelled.csv", {source / "model.keras": copy / "m.keras"}
    )
    assert (copy / "m.keras").read_bytes() == b"weights"
    assert (copy / "training_config.json").read_text() == '{"seed": 42}'

    labelled.iloc[1:].to_csv(copy / "labelled.csv", index=False)
    with pytest.raises(ValueError, match="cannot be shared"):
        share_first_round(
            source / "labelled.csv", copy / "labelled.csv", {source / "model.keras": copy / "x"}
        )
    assert not (copy / "x").exists()


def test_the_simulated_oracle_reveals_exactly_the_acquired_votes(tiny_survey, round_zero):
    schema = tiny_survey.schema
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "pool.h5", waiting, schema)
    acquired = _acquire_from(tiny_survey, round_zero, "bald", 5)
    assert list(acquired["rank"]) == [1, 2, 3, 4, 5]
    assert acquired["score"].is_monotonic_decreasing
    assert {"file_loc", "mi", "mi_smooth-or-featured", "mi_bar"} <= set(acquired.columns)
    np.testing.assert_array_equal(acquired["mi"], acquired["score"])  # BALD ranks by its MI
    grown = reveal(
        round_zero / "labelled.csv",
        round_zero / "unlabelled.csv",
        round_zero / "acquired.csv",
        schema,
        round_zero / "labelled_1.csv",
        round_zero / "unlabelled_1.csv",
        catalogue_path=tiny_survey.catalogue,
    )
    before = pd.read_csv(round_zero / "labelled.csv")
    assert len(grown) == len(before) + 5
    assert set(grown["id_str"]) == set(before["id_str"]) | set(acquired["id_str"])
    still = pd.read_csv(round_zero / "unlabelled_1.csv")["id_str"]
    assert set(still) == set(waiting) - set(acquired["id_str"])
    catalogue = pd.read_parquet(tiny_survey.catalogue).set_index("id_str")
    new = grown.set_index("id_str").loc[acquired["id_str"], schema.label_cols]
    np.testing.assert_array_equal(new.to_numpy(), catalogue.loc[new.index, schema.label_cols])


@pytest.mark.parametrize("strategy", ["bald", "epig", "power_bald", "power_epig", "random"])
def test_acquisitions_are_the_top_of_the_scores_computed_from_the_pool(
    tiny_survey, round_zero, strategy
):
    from zooflow.acquisition import acquire_scores
    from zooflow.posteriors import read_predictions

    schema = tiny_survey.schema
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "pool.h5", waiting, schema)
    with h5py.File(round_zero / "pool.h5", "a") as f:
        f.attrs["dropout_masks"] = "shared"
    acquired = _acquire_from(tiny_survey, round_zero, strategy, 7, seed=5)
    scores = pd.read_csv(round_zero / "scores.csv", dtype={"id_str": str})
    # The acquisitions are the seven best of the written scores, in order...
    best = scores.sort_values(["score", "id_str"], ascending=[False, True]).head(7)
    assert list(acquired["id_str"]) == list(best["id_str"])
    # ...and those scores are the strategy's own, computed here from the pool predictions.
    ids, _, predictions, _ = read_predictions(round_zero / "pool.h5")
    direct = acquire_scores(strategy, predictions, schema, expected_votes=40, seed=5)
    np.testing.assert_allclose(
        scores.set_index("id_str").loc[ids, "score"], direct.scores, rtol=1e-12
    )
    assert set(acquired["id_str"]) <= set(waiting)


def _split_predictions(path: Path, parts: list[Path], cut: int) -> None:
    """Two shard-group parts of a predictions file: its first ``cut`` galaxies and the rest."""
    with h5py.File(path, "r") as whole:
        for part, rows in zip(parts, (slice(0, cut), slice(cut, None)), strict=True):
            with h5py.File(part, "w") as f:
                for name in ("predictions", "votes"):
                    f[name] = whole[name][rows]
                f.create_dataset("id_str", data=whole["id_str"].asstr()[rows], dtype=STRING)
                f.create_dataset("label_cols", data=whole["label_cols"][:], dtype=STRING)
                f.attrs.update(dict(whole.attrs))


def test_a_pool_scored_one_shard_group_at_a_time_acquires_what_the_whole_pool_does(
    tiny_survey, round_zero
):
    """BALD of the root question alone (861 outcomes for 40 volunteers: exact), so the groups'
    scores must be the whole pool's, calibrated the same way, and the acquisitions the same."""
    from zooflow.acquisition import score_part
    from zooflow.posteriors import apply_temperatures, read_predictions

    schema = tiny_survey.schema
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "raw.h5", waiting, schema)
    temperatures = {"smooth-or-featured": 2.0, "bar": 0.5}
    (round_zero / "calibration.json").write_text(
        json.dumps({"temperatures": {q: {"temperature": t} for q, t in temperatures.items()}})
    )
    # The gathered file is calibrated; the groups' parts are not (calibration comes after them).
    ids, _, raw, _ = read_predictions(round_zero / "raw.h5")
    _fake_predictions(round_zero / "pool.h5", waiting, schema)
    with h5py.File(round_zero / "pool.h5", "a") as f:
        f["predictions"][...] = apply_temperatures(raw, schema, temperatures)
    parts = [round_zero / "group_0.h5", round_zero / "group_1.h5"]
    _split_predictions(round_zero / "raw.h5", parts, cut=len(waiting) // 3)
    settings = {"question_weights": {"smooth-or-featured": 1.0}, "seed": 3}
    whole = acquire(
        round_zero / "pool.h5",
        round_zero / "unlabelled.csv",
        tiny_survey.catalogue,
        schema,
        strategy="bald",
        n_acquire=6,
        scores_out=round_zero / "scores_whole.csv",
        acquired_out=round_zero / "acquired_whole.csv",
        **settings,
    )
    for group, part in enumerate(parts):
        score_part(
            part,
            schema,
            strategy="bald",
            scores_out=round_zero / f"scores_{group}.parquet",
            calibration_path=round_zero / "calibration.json",
            group=group,
            **settings,
        )
    grouped = acquire(
        None,
        round_zero / "unlabelled.csv",
        tiny_survey.catalogue,
        schema,
        strategy="bald",
        n_acquire=6,
        scores_out=round_zero / "scores_grouped.csv",
        acquired_out=round_zero / "acquired_grouped.csv",
        score_parts=[round_zero / "scores_0.parquet", round_zero / "scores_1.parquet"],
        **settings,
    )
    # Exact terms agree; per-question terms of deeper questions are Monte-Carlo readings.
    exact = ["rank", "id_str", "file_loc", "score", "mi", "mi_smooth-or-featured"]
    pd.testing.assert_frame_equal(grouped[exact], whole[exact], rtol=1e-12)
    written = pd.read_csv(round_zero / "scores_grouped.csv", dtype={"id_str": str})
    assert written["id_str"].tolist() == list(ids)
    uncalibrated = score_part(
        parts[0], schema, strategy="bald", scores_out=round_zero / "raw.parquet", **settings
    )
    assert not np.allclose(uncalibrated["score"], written["score"][: len(uncalibrated)])


def test_group_scores_draw_from_their_own_seed_and_epig_is_never_split(tiny_survey, round_zero):
    from zooflow.acquisition import AcquisitionError, score_part

    schema = tiny_survey.schema
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "pool.h5", waiting, schema)
    half = len(waiting) // 2
    _split_predictions(round_zero / "pool.h5", [round_zero / "a.h5", round_zero / "b.h5"], half)
    _split_predictions(round_zero / "pool.h5", [round_zero / "c.h5", round_zero / "d.h5"], half)

    def scored(part, group, name):
        out = round_zero / f"{name}.parquet"
        return score_part(part, schema, strategy="random", scores_out=out, group=group, seed=9)

    first, again = scored(round_zero / "a.h5", 0, "x"), scored(round_zero / "c.h5", 0, "y")
    pd.testing.assert_frame_equal(first, again)  # the same on every rerun
    other = scored(round_zero / "a.h5", 1, "z")
    assert not np.allclose(first["score"], other["score"])  # groups draw independently
    with pytest.raises(AcquisitionError, match="cannot be scored one shard group at a time"):
        score_part(round_zero / "a.h5", schema, strategy="epig", scores_out=round_zero / "e")


def test_epig_refuses_predictions_without_shared_dropout_masks(tiny_survey, round_zero):
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "pool.h5", waiting, tiny_survey.schema)
    for strategy in ("epig", "power_epig"):
        with pytest.raises(ValueError, match="same network for every galaxy"):
            _acquire_from(tiny_survey, round_zero, strategy, 3)


def test_power_bald_writes_its_mi_and_the_gallery_ranks_by_it(tiny_survey, round_zero):
    schema = tiny_survey.schema
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "pool.h5", waiting, schema)
    written = {}
    for strategy in ("bald", "power_bald", "random"):
        _acquire_from(tiny_survey, round_zero, strategy, 5, suffix=f"_{strategy}", seed=7)
        written[strategy] = pd.read_csv(round_zero / f"scores_{strategy}.csv").set_index("id_str")
    bald, power = written["bald"], written["power_bald"]
    np.testing.assert_allclose(power.loc[bald.index, "mi"], bald["mi"])
    assert not np.allclose(power["score"], power["mi"])  # power BALD ranks by ln MI + noise
    assert "mi" not in written["random"].columns

    measure, picks = gallery_picks(power.reset_index(), 3)
    assert measure == "mi"
    by_mi = power.sort_values("mi", ascending=False).index
    assert list(picks["most informative"]["id_str"]) == list(by_mi[:3])
    assert list(picks["least informative"]["id_str"]) == list(by_mi[-3:])
    measure, picks = gallery_picks(written["random"].reset_index(), 3)
    assert measure == "score"
    top = written["random"]["score"].nlargest(3).index
    assert list(picks["most informative"]["id_str"]) == list(top)


def test_the_same_seed_gives_identical_acquisitions(tiny_survey, round_zero):
    schema = tiny_survey.schema
    waiting = pd.read_csv(round_zero / "unlabelled.csv")["id_str"].tolist()
    _fake_predictions(round_zero / "pool.h5", waiting, schema)
    picks = []
    for attempt in range(2):
        for strategy in ("bald", "random"):
            out = _acquire_from(
                tiny_survey, round_zero, strategy, 6, suffix=f"_{strategy}_{attempt}", seed=11
            )
            picks.append(out["id_str"].tolist())
    assert picks[0] == picks[2] and picks[1] == picks[3]
    assert picks[0] != picks[1]


@pytest.fixture()
def campaign_round(tiny_survey, tmp_path):
    """A campaign's round 0: four pool galaxies wait without votes and were asked for."""
    schema = tiny_survey.schema
    start_rounds(
        tiny_survey.splits,
        tiny_survey.catalogue,
        schema,
        tmp_path / "labelled.csv",
        tmp_path / "unlabelled.csv",
        oracle="campaign",
    )
    # The mock catalogue has votes for every galaxy: in a campaign nothing waits.
    assert pd.read_csv(tmp_path / "unlabelled.csv").empty
    catalogue = pd.read_parquet(tiny_survey.catalogue).set_index("id_str")
    splits = pd.read_csv(tiny_survey.splits)
    asked = splits.loc[splits["split"] == "pool", "id_str"].head(4).tolist()
    labelled = pd.read_csv(tmp_path / "labelled.csv")
    labelled[~labelled["id_str"].isin(asked)].to_csv(tmp_path / "labelled.csv", index=False)
    pd.DataFrame({"id_str": asked}).to_csv(tmp_path / "unlabelled.csv", index=False)
    pd.DataFrame({"rank": range(1, 5), "id_str": asked}).to_csv(
        tmp_path / "to_label.csv", index=False
    )
    return tmp_path, asked, catalogue.loc[asked, schema.label_cols].reset_index()


def _reveal_campaign(survey, folder, votes, **kwargs):
    return reveal_campaign(
        folder / "labelled.csv",
        folder / "unlabelled.csv",
        survey.schema,
        folder / "labelled_1.csv",
        folder / "unlabelled_1.csv",
        folder / "rejected.csv",
        asked=[folder / "to_label.csv"],
        votes=votes,
        **kwargs,
    )


def test_campaign_votes_get_ingests_checks_and_only_good_votes_label_a_galaxy(
    tiny_survey, campaign_round
):
    folder, asked, truth = campaign_round
    votes = truth.copy()
    # Galaxy 1: more edge-on answers than volunteers who said "disk" (a tree inconsistency).
    parent = votes.loc[1, "smooth-or-featured_featured-or-disk"]
    votes.loc[1, "disk-edge-on_no"] = parent + 5
    votes.loc[1, "disk-edge-on_yes"] = 0
    # Galaxy 2: a row of zeros, nobody has voted yet.
    votes.loc[2, tiny_survey.schema.label_cols] = 0
    votes.to_csv(folder / "votes.csv", index=False)

    grown = _reveal_campaign(tiny_survey, folder, [folder / "votes.csv"], max_rejected_fraction=0.5)

    labelled = set(grown["id_str"])
    assert {asked[0], asked[3]} <= labelled and not {asked[1], asked[2]} & labelled
    assert set(pd.read_csv(folder / "unlabelled_1.csv")["id_str"]) == {asked[1], asked[2]}
    rejected = pd.read_csv(folder / "rejected.csv")
    assert list(rejected.columns) == ["id_str", "file", "reason", "row"]
    assert rejected["id_str"].tolist() == [asked[1]] and rejected["row"].tolist() == [1]
    assert rejected["file"].tolist() == [str(folder / "votes.csv")]
    # Ingest's own words for the same fault.
    reason = rejected["reason"].iloc[0]
    assert reason.startswith(
        f"disk-edge-on total {parent + 5} exceeds parent smooth-or-featured_featured-or-disk "
        f"count {parent}"
    )
    np.testing.assert_array_equal(
        grown.set_index("id_str").loc[asked[0], tiny_survey.schema.label_cols].to_numpy(),
        truth.loc[0, tiny_survey.schema.label_cols].to_numpy(),
    )


def test_too_many_rejected_campaign_votes_stop_the_round_naming_file_row_and_reason(
    tiny_survey, campaign_round
):
    folder, asked, truth = campaign_round
    votes = truth.copy()
    votes.loc[0, "bar_no"] = -2
    votes.loc[1, "id_str"] = "never_asked"
    votes.to_csv(folder / "votes.csv", index=False)
    with pytest.raises(ValueError, match="2 of 4 campaign vote rows rejected") as failure:
        _reveal_campaign(tiny_survey, folder, [folder / "votes.csv"])
    message = str(failure.value)
    assert f"votes.csv row 0 ('{asked[0]}'): negative vote count -2 in bar_no" in message
    assert "row 1 ('never_asked'): 'never_asked' was never asked for" in message
    assert len(pd.read_csv(folder / "rejected.csv")) == 2  # the report is written first


def test_late_campaign_votes_in_an_earlier_rounds_file_join_the_next_round(
    tiny_survey, campaign_round
):
    folder, asked, truth = campaign_round
    # Round 0's file now has every asked galaxy; round 1's file repeats one of them, newer.
    truth.to_csv(folder / "votes_0.csv", index=False)
    newer = truth.iloc[[3]].copy()
    newer[tiny_survey.schema.label_cols] = truth.iloc[[0]][tiny_survey.schema.label_cols].values
    newer.to_csv(folder / "votes_1.csv", index=False)
    grown = _reveal_campaign(tiny_survey, folder, [folder / "votes_0.csv", folder / "votes_1.csv"])
    assert set(asked) <= set(grown["id_str"])
    taken = grown.set_index("id_str").loc[asked[3], tiny_survey.schema.label_cols]
    np.testing.assert_array_equal(taken.to_numpy(), truth.loc[0, tiny_survey.schema.label_cols])


def test_labels_needed_interpolates_between_rounds():
    n = np.array([100, 200, 300, 400])
    rmse = np.array([0.30, 0.20, 0.15, 0.14])
    assert labels_needed(n, rmse, 0.25) == pytest.approx(150)
    assert labels_needed(n, rmse, 0.30) == pytest.approx(100)
    assert np.isnan(labels_needed(n, rmse, 0.10))


def test_labels_saved_compares_bald_with_randoms_final_score():
    rows = []
    for seed in (1, 2):
        for r, (bald, rand) in enumerate([(0.30, 0.30), (0.20, 0.26), (0.15, 0.22), (0.13, 0.20)]):
            rows.append(
                dict(strategy="bald", seed=seed, round=r, n_labelled=100 * (r + 1), rmse=bald)
            )
            rows.append(
                dict(strategy="random", seed=seed, round=r, n_labelled=100 * (r + 1), rmse=rand)
            )
    saved = labels_saved(pd.DataFrame(rows))["rmse"]
    # random ends at 0.20 with 400 labels; BALD reaches 0.20 at 200 labels.
    assert saved["bald_labels_needed"] == pytest.approx(200)
    assert saved["labels_saved"] == pytest.approx(0.5)
    assert saved["acquired_labels_saved"] == pytest.approx(1 - 100 / 300)
    assert saved["seeds"] == 2
    assert saved["note"] == "" and saved["baseline_improved"]


def test_labels_saved_is_undefined_when_random_never_improves():
    rows = []
    for r, (bald, rand) in enumerate([(0.30, 0.30), (0.31, 0.29), (0.29, 0.31)]):
        rows.append(dict(strategy="bald", seed=1, round=r, n_labelled=100 * (r + 1), rmse=bald))
        rows.append(dict(strategy="random", seed=1, round=r, n_labelled=100 * (r + 1), rmse=rand))
    saved = labels_saved(pd.DataFrame(rows))["rmse"]
    assert np.isnan(saved["labels_saved"]) and np.isnan(saved["acquired_labels_saved"])
    assert "random did not improve on its first round (0.3 -> 0.31)" in saved["note"]
    assert not saved["baseline_improved"]


def test_labels_saved_for_every_strategy_against_random():
    rows = []
    curves = {
        "bald": [0.30, 0.24, 0.21, 0.20],
        "power_bald": [0.30, 0.20, 0.18, 0.16],
        "random": [0.30, 0.26, 0.22, 0.20],
    }
    for strategy, rmse in curves.items():
        for r, value in enumerate(rmse):
            rows.append(
                dict(strategy=strategy, seed=1, round=r, n_labelled=100 * (r + 1), rmse=value)
            )
    saved = labels_saved_by_strategy(pd.DataFrame(rows))
    assert set(saved) == {"bald", "power_bald"}
    # random ends at 0.20 with 400 labels: BALD gets there at 400, power BALD at 200.
    assert saved["bald"]["rmse"]["labels_saved"] == pytest.approx(0.0)
    assert saved["power_bald"]["rmse"]["power_bald_labels_needed"] == pytest.approx(200)
    assert saved["power_bald"]["rmse"]["labels_saved"] == pytest.approx(0.5)
    without_baseline = pd.DataFrame([row for row in rows if row["strategy"] != "random"])
    assert labels_saved_by_strategy(without_baseline) == {}
    behind = pd.DataFrame(rows).replace({"strategy": {"power_bald": "late"}})
    behind.loc[behind["strategy"] == "late", "rmse"] += 0.05
    late = labels_saved_by_strategy(behind)["late"]["rmse"]
    assert np.isnan(late["labels_saved"])
    assert late["note"] == "late never reached random's final 0.2"


def test_labels_saved_at_every_stopping_budget(tmp_path):
    from zooflow.plots import plot_savings_by_budget

    rows = []
    curves = {
        "bald": [0.30, 0.20, 0.15, 0.13],
        "late": [0.30, 0.30, 0.25, 0.21],
        "random": [0.30, 0.30, 0.22, 0.20],
    }
    for strategy, rmse in curves.items():
        for r, value in enumerate(rmse):
            rows.append(
                dict(strategy=strategy, seed=1, round=r, n_labelled=100 * (r + 1), rmse=value)
            )
    every_strategy = labels_saved_by_budget(pd.DataFrame(rows))
    assert set(every_strategy["strategy"]) == {"bald", "late"}
    # "late" never gets to random's score, which differs from random not having improved yet.
    late = every_strategy[every_strategy["strategy"] == "late"].set_index("stop_round")
    assert late["labels_saved"].isna().all()
    assert list(late["baseline_improved"]) == [False, True, True]
    by_budget = every_strategy[every_strategy["strategy"] == "bald"].set_index("stop_round")
    assert list(by_budget.index) == [1, 2, 3]
    assert set(by_budget["metric"]) == {"rmse"}
    assert list(by_budget["random_labels"]) == [200, 300, 400]
    # Stopped after round 1 random had not improved: no saving is defined.
    assert np.isnan(by_budget.loc[1, "labels_saved"])
    assert list(by_budget["baseline_improved"]) == [False, True, True]
    # After round 2 random is at 0.22 with 300 labels; BALD got there at 100 + 0.08/0.10 * 100.
    assert by_budget.loc[2, "labels_saved"] == pytest.approx(1 - 180 / 300)
    assert by_budget.loc[2, "acquired_labels_saved"] == pytest.approx(1 - 80 / 200)
    # The last stop is the headline figure.
    headline = labels_saved(pd.DataFrame(rows))["rmse"]
    assert by_budget.loc[3, "labels_saved"] == pytest.approx(headline["labels_saved"])
    assert by_budget.loc[3, "labels_saved"] == pytest.approx(0.5)
    figure = tmp_path / "by_budget.png"
    plot_savings_by_budget(by_budget.reset_index(), figure)
    assert figure.stat().st_size > 1000


def _round_folders(root, rmse):
    """Round folders as the workflow writes them, seed 3, with the given RMSE per round, and
    the records of those rounds the workflow passes on."""
    rounds = []
    for strategy, per_round in rmse.items():
        for r, value in enumerate(per_round):
            d = root / "al" / strategy / "seed_3" / f"round_{r}"
            rounds.append({"strategy": strategy, "seed": 3, "round": r, "folder": str(d)})
            (d / "evaluation").mkdir(parents=True)
            (d / "evaluation" / "summary.json").write_text(
                json.dumps({"rmse": value, "rmse_truth": 0.2, "coverage_error_at_0.2N_mean": 0.05})
            )
            pd.DataFrame(
                {"answer": ["bar_no", "overall"], "rmse": [0.2, 0.3], "n_galaxies": [4, 9]}
            ).to_csv(d / "evaluation" / "regression.csv", index=False)
            pd.DataFrame({"epoch": [0, 1], "loss": [3, 2], "val_loss": [4.0, 3.5]}).to_csv(
                d / "history.csv", index=False
            )
            pd.DataFrame({"id_str": [f"g{i}" for i in range(10 + 5 * r)]}).to_csv(
                d / "labelled.csv", index=False
            )
    return rounds


def test_learning_curves_read_each_rounds_folder(tmp_path):
    dirs = _round_folders(tmp_path, {"bald": [0.3, 0.2], "random": [0.3, 0.2]})
    curves = collect_learning_curves(dirs)
    assert len(curves) == 4
    assert curves.loc[curves["round"] == 1, "n_acquired"].tolist() == [5, 5]
    assert curves["loss"].tolist() == [3.5] * 4
    assert curves["rmse_bar"].tolist() == [0.2] * 4


def _independent_labels_needed(n, metric, target):
    """First crossing of ``target`` by the piecewise-linear curve, with numpy's interp."""
    if metric[0] <= target:
        return n[0]
    for i in range(1, len(metric)):
        if metric[i] <= target:
            return float(np.interp(target, [metric[i], metric[i - 1]], [n[i], n[i - 1]]))
    return np.nan


def test_labels_saved_interval_resamples_seeds_and_each_seed_has_its_own_saving():
    import itertools
    from math import factorial

    n = np.array([100.0, 200.0, 300.0, 400.0])
    bald = {1: [0.30, 0.20, 0.17, 0.15], 2: [0.30, 0.26, 0.22, 0.19], 3: [0.31, 0.25, 0.20, 0.16]}
    rand = {1: [0.30, 0.27, 0.23, 0.21], 2: [0.30, 0.28, 0.24, 0.20], 3: [0.31, 0.26, 0.22, 0.19]}
    rows = [
        dict(strategy=s, seed=seed, round=r, n_labelled=n[r], rmse=curve[seed][r])
        for s, curve in (("bald", bald), ("random", rand))
        for seed in (1, 2, 3)
        for r in range(4)
    ]
    saved = labels_saved(pd.DataFrame(rows), n_bootstrap=4000)["rmse"]

    def saving(seeds):
        ours = np.mean([bald[s] for s in seeds], axis=0)
        theirs = np.mean([rand[s] for s in seeds], axis=0)
        needed = _independent_labels_needed(n, ours, theirs[-1])
        return 1 - needed / 400 if np.isfinite(needed) else -np.inf

    assert saved["labels_saved"] == pytest.approx(saving([1, 2, 3]))
    for seed in (1, 2, 3):
        assert saved["labels_saved_per_seed"][str(seed)] == pytest.approx(saving([seed]))
    # The exact bootstrap distribution: every multiset of three seeds, with its probability.
    atoms = {}
    for draw in itertools.combinations_with_replacement((1, 2, 3), 3):
        counts = [draw.count(s) for s in (1, 2, 3)]
        probability = factorial(3) / np.prod([factorial(c) for c in counts]) / 27
        value = saving(list(draw))
        atoms[value] = atoms.get(value, 0) + probability
    values = np.array(sorted(atoms))
    cdf = np.cumsum([atoms[v] for v in values])

    def plausible(bound, level):
        """An atom whose CDF step spans ``level`` (within the resampling noise)."""
        i = int(np.flatnonzero(np.isclose(values, bound))[0])
        below = cdf[i - 1] if i else 0.0
        return below - 0.02 <= level <= cdf[i] + 0.02

    low, high = saved["labels_saved_interval"]
    assert plausible(low, 0.05) and plausible(high, 0.95)
    assert low < saved["labels_saved"] < high
    assert "bootstrap interval over 3 seeds" in saved["interval_note"]


def test_one_seed_has_no_interval_and_an_interval_through_zero_says_so():
    rows = []
    for seed, late in ((1, 0.0), (2, 0.06)):
        for r, (bald, rand) in enumerate([(0.30, 0.30), (0.26, 0.25), (0.20, 0.21)]):
            rows.append(
                dict(
                    strategy="bald",
                    seed=seed,
                    round=r,
                    n_labelled=100 * (r + 1),
                    rmse=bald + late * (r > 0),
                )
            )
            rows.append(
                dict(strategy="random", seed=seed, round=r, n_labelled=100 * (r + 1), rmse=rand)
            )
    curves = pd.DataFrame(rows)
    single = labels_saved(curves[curves["seed"] == 1])["rmse"]
    assert single["labels_saved_interval"] is None
    assert single["interval_note"] == "one seed: no interval over seeds"
    both = labels_saved(curves)["rmse"]
    assert both["labels_saved_per_seed"]["2"] != both["labels_saved_per_seed"]["2"]  # never: NaN
    assert both["labels_saved_interval"][0] is None  # some resamples never reach random
    assert "no saving is established" in both["interval_note"]


def test_labels_saved_json_is_strict_json_with_null_where_a_saving_is_undefined(
    tiny_survey, tmp_path
):
    # Random never improves, so there is nothing to reach sooner: the saving is undefined.
    dirs = _round_folders(tmp_path, {"bald": [0.3, 0.2], "random": [0.3, 0.3]})
    names = ["curves", "by_budget", "composition", "saved"]
    out = {name: tmp_path / f"{name}.{'json' if name == 'saved' else 'csv'}" for name in names}
    for figure in ("figure", "by_budget_figure", "composition_figure"):
        out[figure] = tmp_path / f"{figure}.png"
    for table in ("curves_table", "saved_table", "by_budget_table"):
        out[table] = tmp_path / f"{table}.html"
    summarise_rounds(dirs, tiny_survey.catalogue, tiny_survey.schema, out)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    saved = json.loads(out["saved"].read_text(), parse_constant=refuse)
    assert saved["bald"]["rmse"]["labels_saved"] is None
    assert saved["bald"]["rmse"]["acquired_labels_saved"] is None
    assert "random did not improve" in saved["bald"]["rmse"]["note"]
    assert "<td>n/a</td>" in out["saved_table"].read_text()  # the report's table, never nan%
