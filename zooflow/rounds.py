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

from zooflow.ids import read_csv_with_ids
from zooflow.schema import Schema

log = logging.getLogger(__name__)


def read_splits(
    splits_path: str | Path, catalogue_path: str | Path, schema: Schema | None = None
) -> pd.DataFrame:
    """id_str, split, labelled (and the votes, given a schema): one row per galaxy, in order."""
    splits = read_csv_with_ids(splits_path)
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
        frame = read_csv_with_ids(path)
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


def reveal(
    labelled_path: str | Path,
    unlabelled_path: str | Path,
    acquired_path: str | Path,
    schema: Schema,
    labelled_out: str | Path,
    unlabelled_out: str | Path,
    *,
    catalogue_path: str | Path,
) -> pd.DataFrame:
    """The simulated oracle: acquired galaxies join the labelled set with their held-back votes."""
    labelled = read_csv_with_ids(labelled_path)
    waiting = read_csv_with_ids(unlabelled_path)
    acquired = read_csv_with_ids(acquired_path)["id_str"]
    held_back = pd.read_parquet(catalogue_path, columns=["id_str", *schema.label_cols])
    new = held_back.set_index("id_str").loc[acquired].reset_index()
    return _grow(labelled, waiting, new, schema, labelled_out, unlabelled_out)


def _grow(labelled, waiting, new, schema, labelled_out, unlabelled_out) -> pd.DataFrame:
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


def reveal_campaign(
    labelled_path: str | Path,
    unlabelled_path: str | Path,
    schema: Schema,
    labelled_out: str | Path,
    unlabelled_out: str | Path,
    rejected_out: str | Path,
    *,
    asked: Sequence[str | Path],
    votes: Sequence[str | Path],
    tree_tolerance: float = 0.1,
    tree_tolerance_votes: float = 1,
    max_rejected_fraction: float = 0.05,
) -> pd.DataFrame:
    """A campaign's oracle: volunteers' votes for galaxies that were asked for join the labelled set.

    ``asked`` are the published ``to_label.csv`` of every earlier round and ``votes`` their
    ``votes.csv``, oldest first. A galaxy still waiting in the pool joins with the votes of the
    latest file that has a row for it, so votes that arrive late (an earlier round's file that
    grew after the next round was built) join this round. Every row gets ingest's checks (see
    :func:`zooflow.vote_checks.check_votes`); a failing row, or one for a galaxy nobody asked
    for, goes to ``rejected_out`` with its reason and its galaxy stays in the pool, as does a
    galaxy whose row is empty or all zero. More than ``max_rejected_fraction`` of the rows
    rejected stops the step, as in ingest. Rows of galaxies labelled earlier are ignored.
    """
    from zooflow.catalogue import ID_COLUMN, REJECTED_COLUMNS, ROW_COLUMN
    from zooflow.vote_checks import check_votes

    labelled = read_csv_with_ids(labelled_path)
    waiting = read_csv_with_ids(unlabelled_path)
    already = set(labelled["id_str"])
    asked_ids = set()
    for path in asked:
        asked_ids |= set(read_csv_with_ids(path)["id_str"])
    waiting_ids = set(waiting["id_str"])

    accepted: dict[str, np.ndarray] = {}
    rejected: list[dict] = []
    settled_by: dict[str, str] = {}  # galaxy -> the (latest) votes file that decided it
    no_votes_yet: set[str] = set()
    n_ignored = 0
    for path in reversed([str(p) for p in votes]):
        table = read_csv_with_ids(path)
        missing = [c for c in ["id_str", *schema.label_cols] if c not in table.columns]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ValueError(
                f"{path} lacks columns {missing[:5]}{more}: a votes file has id_str and one "
                "column per answer of the tree, named as in the catalogue"
            )
        checked = check_votes(
            table,
            schema,
            tree_tolerance=tree_tolerance,
            tree_tolerance_votes=tree_tolerance_votes,
        )
        for row, galaxy in enumerate(checked.ids):
            if galaxy in already:
                n_ignored += 1
                continue
            if settled_by.get(galaxy, path) != path:
                continue  # a later round's file has this galaxy
            reasons = checked.reasons[row]
            if not reasons and not checked.labelled[row]:
                no_votes_yet.add(galaxy)  # it waits, and an older file's votes may still count
                continue
            if not reasons and galaxy not in asked_ids:
                reasons = [f"{galaxy!r} was never asked for (it is in no round's to_label.csv)"]
            elif not reasons and galaxy not in waiting_ids:
                reasons = [f"{galaxy!r} is not waiting in the pool"]
            if reasons:
                rejected.append(
                    {
                        ID_COLUMN: galaxy or "",
                        "file": path,
                        "reason": "; ".join(reasons),
                        ROW_COLUMN: row,
                    }
                )
            else:
                accepted[galaxy] = checked.counts[row]
            if galaxy is not None:
                settled_by[galaxy] = path

    report = pd.DataFrame(rejected, columns=REJECTED_COLUMNS)
    Path(rejected_out).parent.mkdir(parents=True, exist_ok=True)
    report.to_csv(rejected_out, index=False)
    n_rows = len(accepted) + len(report)
    if n_rows and len(report) / n_rows > max_rejected_fraction:
        examples = "\n".join(
            f"  {file} row {row} ({ident!r}): {reason}"
            for file, row, ident, reason in report.head(5)[
                ["file", ROW_COLUMN, ID_COLUMN, "reason"]
            ].itertuples(index=False)
        )
        raise ValueError(
            f"{len(report)} of {n_rows} campaign vote rows rejected ({len(report) / n_rows:.1%}), "
            f"more than ingest.max_rejected_fraction={max_rejected_fraction:.1%}. Fix or remove "
            f"them in the votes file and run again; every reason is in {rejected_out}, the first "
            f"ones:\n{examples}"
        )
    if len(report):
        log.warning(
            "%d vote rows rejected (their galaxies stay in the pool); reasons in %s",
            len(report),
            rejected_out,
        )
    no_votes_yet -= set(accepted)
    if no_votes_yet:
        log.info("%d galaxies have no votes yet and stay in the pool", len(no_votes_yet))
    if n_ignored:
        log.info("%d rows are for galaxies labelled in an earlier round: ignored", n_ignored)
    new = pd.DataFrame(list(accepted.values()), columns=schema.label_cols, dtype=np.int64)
    new.insert(0, "id_str", list(accepted))
    return _grow(labelled, waiting, new, schema, labelled_out, unlabelled_out)
