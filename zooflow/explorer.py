"""A browsable explorer of a run: a static HTML site, opened from the file system, no server.

``results/explorer/`` holds ``index.html`` (the page, with its script and style inlined),
``data.js`` (every galaxy's summary, assigned to ``window.ZOOFLOW_EXPLORER``: a ``<script>`` can
load it from ``file://`` where ``fetch()`` of a local JSON file is refused) and
``thumbnails/sheet_{k}.jpg``, sprite sheets of the galaxies' preprocessed images (one request per
1,024 galaxies rather than one per galaxy).

A survey larger than ``max_galaxies`` (default 20,000) is shown as a seeded sample of that many
galaxies (by a hash of each id, so the same galaxies every time), always with every galaxy a
shown round acquired: a page a browser opens quickly, not one of hundreds of MB. Neighbours and
round ranks are then among the galaxies on the site, and the page says it is a sample.

Per galaxy ``data.js`` holds its split, per answer the posterior's mean vote fraction and 90%
interval of the vote probability (:mod:`zooflow.posteriors`), P(asked) per question, and where
the galaxy has votes the observed fraction per answer and the number of volunteers per
question. Fractions are stored in thousandths (integers 0-1000, ``null`` for NaN): the site of
the default 1,500-galaxy survey stays under 2 MB. Optionally:

* its nearest neighbours by cosine similarity of the compressed representations
  (:func:`zooflow.representations.nearest_neighbours`), as indices into the galaxy list;
* the active-learning rounds: per strategy, seed and round, the acquisition score of every
  waiting galaxy, its rank, and the galaxies acquired, with their mutual information where the
  strategy computes one.
"""

from __future__ import annotations

import html
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from zooflow.acquisition import SCORE_MEANINGS
from zooflow.atomic import atomic_path
from zooflow.ids import ID_COLUMN, hash_uniform, read_csv_with_ids
from zooflow.schema import Schema

log = logging.getLogger(__name__)

SHEET_COLUMNS = 32  # thumbnails per sprite-sheet row; a sheet holds SHEET_COLUMNS**2 galaxies
# Galaxies on one site at most; a larger run shows a seeded sample (module docstring).
DEFAULT_MAX_GALAXIES = 20_000
# Similarities computed at once when finding neighbours (float64 elements: 32 MB).
NEIGHBOUR_BLOCK_ELEMENTS = 1 << 22
JPEG_QUALITY = 90
REPRESENTATIONS_OFF = (
    "Nearest neighbours come from the network's representations, which this run did not "
    "write: set representations.enabled to true (e.g. snakemake full --config "
    "representations='{enabled: true}') and run again."
)


@dataclass(frozen=True)
class Round:
    """One active-learning round of one strategy and seed, and its files."""

    strategy: str
    seed: int
    round: int
    acquired: str | Path  # acquired.csv: rank, id_str, ..., score[, mi]
    scores: str | Path  # scores.csv: id_str, score[, mi]: every galaxy waiting in the pool


def _permille(values) -> list:
    """Fractions in thousandths, None where NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = np.round(np.clip(values, 0.0, 1.0) * 1000).astype(object)
    out[np.isnan(values)] = None
    return [None if v is None else int(v) for v in out]


def _significant(values, digits: int = 4) -> list:
    return [None if not np.isfinite(v) else float(f"{v:.{digits}g}") for v in values]


def _need_columns(present: Sequence[str], columns: Sequence[str], path, what: str) -> None:
    """A clear error naming the file and the missing columns; ``present``: the file's columns."""
    missing = [c for c in columns if c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5])
        raise ValueError(
            f"{path}: {what} needs column{'s' if len(missing) > 1 else ''} {shown}"
            f"{f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''}; "
            f"it has {list(present)[:8]}..."
        )


def read_posteriors(
    posteriors: Mapping[str, str | Path], schema: Schema
) -> tuple[pd.DataFrame, list[str]]:
    """Every split's posterior summary in one table (``split`` column added), and the answers it
    summarises (every answer of the tree; for a binomial model, its one answer)."""
    frames = []
    answers: list[str] | None = None
    for split, path in posteriors.items():
        # The columns are listed first so that only those the site shows are read: a survey's
        # summary also holds observed intervals per answer, and the site never needs them.
        names = pq.read_schema(path).names
        _need_columns(names, [ID_COLUMN], path, "a posterior summary")
        present = [c for c in schema.label_cols if f"{c}_fraction" in names]
        if not present:
            raise ValueError(
                f"{path}: no posterior column of the tree's answers, e.g. "
                f"{schema.label_cols[0]}_fraction (is it a posteriors.parquet of this tree?)"
            )
        if answers is not None and present != answers:
            raise ValueError(f"{path}: summarises other answers than the other splits' files")
        answers = present
        shown = [
            f"{c}_{column}"
            for c in present
            for column in ("fraction", "probability_lo", "probability_hi")
        ]
        _need_columns(names, shown, path, "a posterior summary")
        asked = [
            f"{q.name}{schema.question_suffix}_p_asked"
            for q in schema.questions
            if f"{q.name}{schema.question_suffix}_p_asked" in names
        ]
        table = pd.read_parquet(path, columns=[ID_COLUMN, *shown, *asked])
        table = table.assign(**{ID_COLUMN: table[ID_COLUMN].astype(str), "split": split})
        frames.append(table)
    if not frames:
        raise ValueError("the explorer needs at least one split's posteriors")
    table = pd.concat(frames, ignore_index=True)
    duplicated = table[ID_COLUMN].duplicated(keep=False)
    if duplicated.any():
        galaxy = table.loc[duplicated, ID_COLUMN].iloc[0]
        splits = table.loc[table[ID_COLUMN] == galaxy, "split"].tolist()
        raise ValueError(f"galaxy {galaxy!r} appears in the posteriors of splits {splits}")
    return table, answers


def observed_votes(catalogue: str | Path, schema: Schema, ids: Sequence[str]) -> tuple[list, list]:
    """Per galaxy of ``ids``: observed vote fractions (thousandths) and volunteers per question,
    or None where the galaxy has no votes."""
    # Only the vote columns: a real catalogue holds hundreds of others (GZ2's public table).
    wanted = [ID_COLUMN, *schema.label_cols]
    _need_columns(pq.read_schema(catalogue).names, wanted, catalogue, "the catalogue")
    table = pd.read_parquet(catalogue, columns=wanted)
    table = table.assign(**{ID_COLUMN: table[ID_COLUMN].astype(str)}).set_index(ID_COLUMN)
    missing = [galaxy for galaxy in ids if galaxy not in table.index]
    if missing:
        raise ValueError(
            f"{catalogue}: galaxies {missing[:5]} of the posteriors are not in the catalogue "
            f"({len(missing)} missing)"
        )
    votes = table.loc[list(ids), schema.label_cols].to_numpy(dtype=np.float64)
    votes = np.nan_to_num(votes)
    totals = schema.question_totals(votes)
    fractions = schema.vote_fractions(votes)
    has_votes = totals.sum(axis=1) > 0
    observed = [_permille(f) if has else None for f, has in zip(fractions, has_votes, strict=True)]
    volunteers = [
        t.astype(int).tolist() if has else None for t, has in zip(totals, has_votes, strict=True)
    ]
    return observed, volunteers


def write_thumbnails(
    images: str | Path, ids: Sequence[str], out_dir: str | Path, *, size: int
) -> dict:
    """Sprite sheets of the galaxies' images in the order of ``ids``; their layout."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_sheet = SHEET_COLUMNS * SHEET_COLUMNS
    with h5py.File(images, "r") as f:
        for name in ("images", ID_COLUMN):
            if name not in f:
                raise ValueError(f"{images}: no {name!r} dataset (a preprocessed images.h5?)")
        index = {galaxy: n for n, galaxy in enumerate(f[ID_COLUMN].asstr()[:])}
        missing = [galaxy for galaxy in ids if galaxy not in index]
        if missing:
            raise ValueError(
                f"{images}: no image for galaxies {missing[:5]} ({len(missing)} missing)"
            )
        native = int(f["images"].shape[1])
        cell = min(native, size)
        files = []
        for sheet, start in enumerate(range(0, len(ids), per_sheet)):
            chosen = np.array([index[g] for g in ids[start : start + per_sheet]])
            order = np.argsort(chosen)
            block = np.empty((len(chosen), *f["images"].shape[1:]), dtype=np.uint8)
            block[order] = f["images"][chosen[order]]
            rows = -(-len(chosen) // SHEET_COLUMNS)
            mode = "L" if block.shape[-1] == 1 else "RGB"
            canvas = Image.new(mode, (SHEET_COLUMNS * cell, rows * cell))
            for n, image in enumerate(block):
                thumb = Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode)
                if cell != native:
                    thumb = thumb.resize((cell, cell), Image.Resampling.LANCZOS)
                canvas.paste(thumb, ((n % SHEET_COLUMNS) * cell, (n // SHEET_COLUMNS) * cell))
            name = f"sheet_{sheet}.jpg"
            canvas.save(out_dir / name, quality=JPEG_QUALITY)
            files.append(f"{out_dir.name}/{name}")
    return {"files": files, "columns": SHEET_COLUMNS, "per_sheet": per_sheet, "cell": cell}


def neighbour_lists(
    tables: Mapping[str, str | Path], ids: Sequence[str], k: int
) -> list[list[list]]:
    """Per galaxy of ``ids``: its ``k`` nearest among ``ids`` by cosine similarity of the
    compressed representations in ``tables``, as [index into ids, similarity].

    The vectors of ``ids`` are read once (40 numbers a galaxy); similarities are computed in
    blocks of queries, so memory stays bounded for any number of galaxies on the site.
    """
    from zooflow.representations import read_pca_blocks, unit_vectors

    position = {galaxy: n for n, galaxy in enumerate(ids)}
    vectors: np.ndarray | None = None
    found = np.zeros(len(ids), dtype=bool)
    for path in tables.values():
        for block_ids, block in read_pca_blocks([path], 8192):
            rows = [position.get(str(galaxy)) for galaxy in block_ids]
            on_site = [n for n, row in enumerate(rows) if row is not None]
            if vectors is None:
                vectors = np.zeros((len(ids), block.shape[1]))
            targets = [rows[n] for n in on_site]
            vectors[targets] = block[on_site]
            found[targets] = True
    if not found.all():
        missing = [ids[n] for n in np.flatnonzero(~found)[:5]]
        raise ValueError(
            f"galaxies {missing} have no representation in {list(map(str, tables.values()))}"
        )
    k = min(k, len(ids) - 1)
    unit = unit_vectors(vectors)
    queries_per_block = max(1, NEIGHBOUR_BLOCK_ELEMENTS // len(ids))
    lists: list[list[list]] = []
    for start in range(0, len(ids), queries_per_block):
        stop = min(start + queries_per_block, len(ids))
        similarity = unit[start:stop] @ unit.T
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        for row, columns in enumerate(nearest):
            lists.append([[int(c), round(float(similarity[row, c]), 4)] for c in columns])
    return lists


def round_summary(
    round_: Round, position: Mapping[str, int], known: set[str] | None = None
) -> dict:
    """One round's scores and acquisitions, galaxies as indices into the site's list.

    ``known``: every galaxy of the run when the site shows a sample (``position``); scored
    galaxies off the site are left out, and ranks are among the galaxies shown."""
    scores = read_csv_with_ids(round_.scores)
    _need_columns(list(scores.columns), [ID_COLUMN, "score"], round_.scores, "a round's scores")
    acquired = read_csv_with_ids(round_.acquired)
    _need_columns(
        list(acquired.columns),
        [ID_COLUMN, "rank", "score"],
        round_.acquired,
        "a round's acquisitions",
    )
    known = set(position) if known is None else known
    for path, table in ((round_.scores, scores), (round_.acquired, acquired)):
        unknown = [g for g in table[ID_COLUMN] if g not in known]
        if unknown:
            raise ValueError(
                f"{path}: galaxies {unknown[:5]} are not among the explorer's galaxies "
                f"({len(unknown)} unknown)"
            )
    scores = scores[scores[ID_COLUMN].isin(position)]
    # Rank as the acquisition orders: highest score first, equal scores in ascending id order.
    ranked = scores.sort_values(["score", ID_COLUMN], ascending=[False, True], kind="stable")
    acquired = acquired.sort_values("rank", kind="stable")
    return {
        "strategy": round_.strategy,
        "seed": int(round_.seed),
        "round": int(round_.round),
        "scored": [position[g] for g in ranked[ID_COLUMN]],
        "score": _significant(ranked["score"].to_numpy(dtype=np.float64)),
        "acquired": [position[g] for g in acquired[ID_COLUMN]],
        "acquired_mi": (
            _significant(acquired["mi"].to_numpy(dtype=np.float64))
            if "mi" in acquired.columns
            else None
        ),
    }


def _sample(table: pd.DataFrame, rounds: Sequence[Round], max_galaxies: int) -> pd.DataFrame:
    """At most ``max_galaxies`` rows, in the table's order: every galaxy the rounds acquired,
    then the others with the smallest hash of their id (module docstring)."""
    if max_galaxies < 1:
        raise ValueError(f"explorer.max_galaxies must be at least 1, got {max_galaxies}")
    if len(table) <= max_galaxies:
        return table
    acquired = set()
    for round_ in rounds:
        acquired.update(read_csv_with_ids(round_.acquired)[ID_COLUMN])
    must = table[ID_COLUMN].isin(acquired).to_numpy()
    if must.sum() > max_galaxies:
        raise ValueError(
            f"the rounds shown acquired {int(must.sum())} galaxies, more than "
            f"explorer.max_galaxies = {max_galaxies}: raise it, or show fewer rounds"
        )
    order = np.argsort(hash_uniform(table[ID_COLUMN], seed=0), kind="stable")
    rest = order[~must[order]][: max_galaxies - int(must.sum())]
    keep = must.copy()
    keep[rest] = True
    log.info(
        "explorer: %d of the run's %d galaxies (a seeded sample; explorer.max_galaxies = %d)",
        int(keep.sum()),
        len(table),
        max_galaxies,
    )
    return table[keep].reset_index(drop=True)


def explorer_data(
    posteriors: Mapping[str, str | Path],
    catalogue: str | Path,
    schema: Schema,
    *,
    representations: Mapping[str, str | Path] | None = None,
    rounds: Sequence[Round] = (),
    neighbours: int = 8,
    max_galaxies: int = DEFAULT_MAX_GALAXIES,
) -> dict:
    """Everything ``data.js`` holds except the thumbnails' layout (module docstring)."""
    table, answers = read_posteriors(posteriors, schema)
    n_run = len(table)
    known = set(table[ID_COLUMN])
    table = _sample(table, rounds, max_galaxies)
    ids = table[ID_COLUMN].tolist()
    splits = list(posteriors)
    questions = []
    for q in schema.questions:
        shown = [a for a in q.answers if schema.column(q.name, a) in answers]
        if shown:
            questions.append(
                {
                    "name": q.name,
                    "answers": [answers.index(schema.column(q.name, a)) for a in shown],
                    "labels": shown,
                    "p_asked": f"{q.name}{schema.question_suffix}_p_asked" in table.columns,
                }
            )
    per_answer = {
        key: np.stack([table[f"{c}_{column}"] for c in answers], axis=1)
        for key, column in (
            ("fraction", "fraction"),
            ("lo", "probability_lo"),
            ("hi", "probability_hi"),
        )
    }
    asked_cols = [f"{q['name']}{schema.question_suffix}_p_asked" for q in questions]
    p_asked = table[[c for c in asked_cols if c in table.columns]].to_numpy(dtype=np.float64)
    observed, volunteers = observed_votes(catalogue, schema, ids)
    position = {galaxy: n for n, galaxy in enumerate(ids)}
    data = {
        "answers": answers,
        "questions": questions,
        "splits": splits,
        "ids": ids,
        "split": [splits.index(s) for s in table["split"]],
        **{key: [_permille(row) for row in values] for key, values in per_answer.items()},
        "p_asked": [_permille(row) for row in p_asked],
        "observed": observed,
        "volunteers": volunteers,
        "neighbours": None,
        "neighbours_note": REPRESENTATIONS_OFF,
        "rounds": [round_summary(r, position, known) for r in rounds],
        "run_galaxies": n_run,  # more than len(ids) when the site shows a sample
        "strategies": {
            s: SCORE_MEANINGS.get(s, f"the {s} acquisition score")
            for s in dict.fromkeys(r.strategy for r in rounds)
        },
    }
    if representations:
        data["neighbours"] = neighbour_lists(representations, ids, neighbours)
        data["neighbours_note"] = ""
    return data


def _site_file(name: str) -> str:
    return resources.files("zooflow").joinpath("explorer_site", name).read_text(encoding="utf-8")


def write_explorer(
    posteriors: Mapping[str, str | Path],
    images: str | Path,
    catalogue: str | Path,
    schema: Schema,
    out_dir: str | Path,
    *,
    representations: Mapping[str, str | Path] | None = None,
    rounds: Sequence[Round] = (),
    neighbours: int = 8,
    thumbnail_size: int = 64,
    max_galaxies: int = DEFAULT_MAX_GALAXIES,
    title: str = "zooflow explorer",
) -> Path:
    """Write the site (module docstring) into ``out_dir``; returns the path of ``index.html``.

    ``posteriors`` and ``representations`` map split names to a run's ``{split}_posteriors.parquet``
    and ``{split}_pca.parquet``; ``rounds`` the active-learning rounds to show.
    """
    if neighbours < 1:
        raise ValueError(f"explorer.neighbours must be at least 1, got {neighbours}")
    if thumbnail_size < 8:
        raise ValueError(f"explorer.thumbnail_size must be at least 8 px, got {thumbnail_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = explorer_data(
        posteriors,
        catalogue,
        schema,
        representations=representations,
        rounds=rounds,
        neighbours=neighbours,
        max_galaxies=max_galaxies,
    )
    data["title"] = title
    thumbnails = out_dir / "thumbnails"
    if thumbnails.exists():
        shutil.rmtree(thumbnails)
    data["thumbnails"] = write_thumbnails(images, data["ids"], thumbnails, size=thumbnail_size)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    with atomic_path(out_dir / "data.js") as temporary:
        Path(temporary).write_text(f"window.ZOOFLOW_EXPLORER = {text};\n", encoding="utf-8")
    page = (
        _site_file("index.html")
        .replace("/*STYLE*/", _site_file("explorer.css"))
        .replace("/*SCRIPT*/", _site_file("explorer.js"))
        .replace("<!--TITLE-->", html.escape(title))
    )
    index = out_dir / "index.html"
    with atomic_path(index) as temporary:
        Path(temporary).write_text(page, encoding="utf-8")
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    log.info(
        "explorer of %d galaxies (%d rounds, neighbours %s): %.2f MB -> %s",
        len(data["ids"]),
        len(rounds),
        "on" if data["neighbours"] is not None else "off",
        size / 1e6,
        index,
    )
    return index


def read_explorer_data(out_dir: str | Path) -> dict:
    """``data.js`` of a written site, as the page sees it (for tests and benchmarks)."""
    text = (Path(out_dir) / "data.js").read_text(encoding="utf-8")
    prefix = "window.ZOOFLOW_EXPLORER = "
    if not text.startswith(prefix):
        raise ValueError(f"{out_dir}/data.js does not assign window.ZOOFLOW_EXPLORER")
    return json.loads(text[len(prefix) :].rstrip().rstrip(";"))
