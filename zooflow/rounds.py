"""Who is labelled when: training sets of the supervised run and of active-learning rounds.

What the rounds add up to (learning curves, labels saved) is :mod:`zooflow.study`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.schema import Schema

log = logging.getLogger(__name__)


def read_splits(
    splits_path: str | Path, catalogue_path: str | Path, schema: Schema | None = None
) -> pd.DataFrame:
    """id_str, split, labelled (and the votes, given a schema): one row per galaxy, in order."""
    splits = pd.read_csv(splits_path, dtype={"id_str": str})
    columns = ["id_str", "labelled", *(schema.label_cols if schema else [])]
    labelled = pd.read_parquet(catalogue_path, columns=columns)
    table = labelled.merge(splits, on="id_str", how="left", validate="one_to_one")
    if table["split"].isna().any():
        missing = table.loc[table["split"].isna(), "id_str"].head(3).tolist()
        raise ValueError(f"{splits_path} has no split for galaxies such as {missing}")
    return table


def write_labelled_from_splits(
    splits_path: str | Path,
    catalogue_path: str | Path,
    schema: Schema,
    splits: Sequence[str],
    out_path: str | Path,
) -> pd.DataFrame:
    """Every galaxy with votes in the given splits, with its votes: a training set."""
    table = read_splits(splits_path, catalogue_path, schema)
    keep = table["split"].isin(list(splits)) & table["labelled"]
    chosen = table.loc[keep, ["id_str", "split", *schema.label_cols]]
    chosen.to_csv(out_path, index=False)
    log.info("%d labelled galaxies in %s", len(chosen), ", ".join(splits))
    return chosen


ORACLES = ("simulated", "campaign")


def start_rounds(
    splits_path: str | Path,
    catalogue_path: str | Path,
    schema: Schema,
    labelled_out: str | Path,
    unlabelled_out: str | Path,
    *,
    oracle: str = "simulated",
) -> None:
    """Round 0: who is labelled and who waits in the pool.

    Simulated: the initial split is labelled; every pool galaxy waits, its votes held back for
    the oracle. Campaign: pool galaxies that already have votes are labelled too (real labels
    are never held back); only galaxies without votes wait to be shown to volunteers.
    """
    if oracle not in ORACLES:
        raise ValueError(f"active_learning.oracle must be one of {ORACLES}, not {oracle!r}")
    table = read_splits(splits_path, catalogue_path, schema)
    labelled = (table["split"] == "initial") & table["labelled"]
    waiting = table["split"] == "pool"
    if oracle == "campaign":
        labelled |= waiting & table["labelled"]
        waiting &= ~table["labelled"]
    else:
        waiting &= table["labelled"]  # the simulated oracle can only reveal votes it has
    table.loc[labelled, ["id_str", *schema.label_cols]].to_csv(labelled_out, index=False)
    table.loc[waiting, ["id_str"]].to_csv(unlabelled_out, index=False)
    log.info("round 0: %d labelled, %d in the pool", int(labelled.sum()), int(waiting.sum()))


def share_first_round(
    source_labelled: str | Path,
    labelled: str | Path,
    copies: dict[str | Path, str | Path],
) -> None:
    """Give another strategy the first strategy's round-0 model instead of training it again.

    Round 0 trains every strategy on the same initial set with the same seed, so the models
    are the same; sharing saves one training per extra strategy and seed. Refuses if the two
    labelled sets differ. ``copies`` maps each source file (model, history) to its copy; a
    ``training_config.json`` beside the source model comes along.
    """

    def table(path: str | Path) -> pd.DataFrame:
        frame = pd.read_csv(path, dtype={"id_str": str})
        return frame.sort_values("id_str", ignore_index=True)

    if not table(source_labelled).equals(table(labelled)):
        raise ValueError(
            f"{labelled} and {source_labelled} differ, so round 0 cannot be shared: both should "
            "be the initial split"
        )
    for source, copy in copies.items():
        source, copy = Path(source), Path(copy)
        shutil.copyfile(source, copy)
        if source.suffix == ".keras" and (source.parent / "training_config.json").exists():
            shutil.copyfile(
                source.parent / "training_config.json", copy.parent / "training_config.json"
            )
        log.info("round 0: %s shared from %s", copy, source)


def acquire(
    predictions_path: str | Path,
    unlabelled_path: str | Path,
    catalogue_path: str | Path,
    schema: Schema,
    *,
    strategy: str,
    n_acquire: int,
    scores_out: str | Path,
    acquired_out: str | Path,
    head: str = "dirichlet",
    expected_votes: float = 40,
    question_weights: dict[str, float] | None = None,
    seed: int = 0,
    information: str = "joint",
    draws_per_sample: int = 4,
    epig_targets: int = 200,
) -> pd.DataFrame:
    """Score every waiting galaxy with the strategy and pick the top ``n_acquire``.

    Writes every score (``scores_out``: id_str, score, mi, mi_<question>) and the acquisitions
    (``acquired_out``: rank, id_str, file_loc, score, mi, mi_<question>), ready to upload as
    Zooniverse subjects in a real campaign. ``score`` is what the strategy ranks by; ``mi``, the
    combined BALD mutual information, is written for the BALD strategies (for ``power_bald`` the
    score is ln MI plus noise, so ``mi`` is the one to read as information).
    """
    from zooflow.acquisition import acquire_scores, top_k
    from zooflow.posteriors import read_predictions

    ids, _, predictions, attrs = read_predictions(predictions_path)
    if strategy == "epig" and attrs.get("dropout_masks") != "shared":
        raise ValueError(
            f"{predictions_path}: EPIG needs samples that are the same network for every galaxy, "
            "which predictions written before zooflow shared dropout masks are not; "
            "rerun the prediction (snakemake --forcerun predict)"
        )
    waiting = set(pd.read_csv(unlabelled_path, dtype={"id_str": str})["id_str"])
    stray = sorted(set(ids) - waiting)
    if stray:
        raise ValueError(
            f"{predictions_path} holds galaxies that are not waiting in the pool, e.g. {stray[:3]}"
        )
    result = acquire_scores(
        strategy,
        predictions,
        schema,
        head=head,
        expected_votes=expected_votes,
        question_weights=question_weights or None,
        seed=seed,
        binomial_votes=int(round(expected_votes)),
        information=information,
        draws_per_sample=draws_per_sample,
        epig_targets=epig_targets,
    )
    scores = pd.DataFrame({"id_str": ids, "score": result.scores})
    if result.mutual_information is not None:
        scores["mi"] = result.mutual_information
    if result.per_question is not None:
        names = (
            schema.question_names
            if result.per_question.shape[1] == schema.n_questions
            else ["answer"]
        )
        for j, name in enumerate(names):
            scores[f"mi_{name}"] = result.per_question[:, j]
    chosen = top_k(ids, result.scores, n_acquire)
    files = pd.read_parquet(catalogue_path, columns=["id_str", "file_loc"]).set_index("id_str")
    acquired = scores.set_index("id_str").loc[list(chosen)].reset_index()
    acquired.insert(0, "rank", range(1, len(acquired) + 1))
    acquired.insert(2, "file_loc", files.loc[acquired["id_str"], "file_loc"].to_numpy())
    scores.to_csv(scores_out, index=False)
    acquired.to_csv(acquired_out, index=False)
    log.info("%s acquired %d of %d waiting galaxies", strategy, len(acquired), len(ids))
    return acquired


def read_revealed_votes(path: str | Path, schema: Schema, acquired: set[str]) -> pd.DataFrame:
    """Votes volunteers gave to acquired galaxies (a campaign's upload), checked row by row."""
    votes = pd.read_csv(path, dtype={"id_str": str})
    missing = [c for c in ["id_str", *schema.label_cols] if c not in votes.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing[:5]}{'…' if len(missing) > 5 else ''}")
    problems = []
    for row, record in votes.iterrows():
        if record["id_str"] not in acquired:
            problems.append(f"row {row}: {record['id_str']!r} was not acquired this round")
        counts = pd.to_numeric(record[schema.label_cols], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(counts) | (counts < 0) | (counts != np.round(counts))
        if bad.any():
            column = schema.label_cols[int(np.flatnonzero(bad)[0])]
            problems.append(
                f"row {row} ({record['id_str']}): vote count {record[column]!r} in {column} "
                "is not a non-negative integer"
            )
    if votes["id_str"].duplicated().any():
        problems.append(
            f"galaxy {votes.loc[votes['id_str'].duplicated(), 'id_str'].iloc[0]!r} appears twice"
        )
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems[:10]))
    votes[schema.label_cols] = votes[schema.label_cols].astype(np.int64)
    return votes[["id_str", *schema.label_cols]]


def reveal(
    labelled_path: str | Path,
    unlabelled_path: str | Path,
    acquired_path: str | Path,
    schema: Schema,
    labelled_out: str | Path,
    unlabelled_out: str | Path,
    *,
    catalogue_path: str | Path | None = None,
    campaign_votes_path: str | Path | None = None,
) -> pd.DataFrame:
    """The oracle: acquired galaxies join the labelled set with their votes.

    Simulated (``catalogue_path``): the held-back votes are read from the catalogue. Campaign
    (``campaign_votes_path``): votes come from volunteers' classifications; acquired galaxies
    that received none go back to the pool.
    """
    labelled = pd.read_csv(labelled_path, dtype={"id_str": str})
    waiting = pd.read_csv(unlabelled_path, dtype={"id_str": str})
    acquired = pd.read_csv(acquired_path, dtype={"id_str": str})["id_str"]
    if campaign_votes_path is not None:
        new = read_revealed_votes(campaign_votes_path, schema, set(acquired))
    elif catalogue_path is not None:
        held_back = pd.read_parquet(catalogue_path, columns=["id_str", *schema.label_cols])
        new = held_back.set_index("id_str").loc[acquired].reset_index()
    else:
        raise ValueError("the oracle needs the catalogue (simulated) or campaign votes")
    overlap = set(new["id_str"]) & set(labelled["id_str"])
    if overlap:
        raise ValueError(f"galaxies acquired twice: {sorted(overlap)[:3]}")
    grown = pd.concat([labelled[["id_str", *schema.label_cols]], new], ignore_index=True)
    still_waiting = waiting[~waiting["id_str"].isin(new["id_str"])]
    grown.to_csv(labelled_out, index=False)
    still_waiting.to_csv(unlabelled_out, index=False)
    log.info(
        "oracle revealed %d galaxies: %d labelled, %d waiting",
        len(new),
        len(grown),
        len(still_waiting),
    )
    return grown
