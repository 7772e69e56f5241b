"""Catalogue ingest: check every row of a volunteer-vote catalogue and split it into clean and rejected.

A catalogue (CSV or parquet) has one row per galaxy: an id, an image path (or a template that
builds one from the id), and one vote-count column per answer of the decision tree. Each row is
checked and either kept or rejected with a reason that names the offending column and value:

* the id is present, unique (the first occurrence of a repeated id is kept) and kept exactly:
  text with no surrounding spaces, or an integer (a floating-point id column is refused);
* the image file exists and decodes (16-bit, RGBA and odd-sized images are fine: preprocessing
  converts them later);
* vote counts are finite, non-negative integers;
* the tree is consistent: for every question q with parent answer p,
  ``|sum_a votes[q_a] - votes[p]| <= max(tree_tolerance_votes, tree_tolerance * votes[p])``.
  Real GZ2 / GZ DECaLS tables carry small inconsistencies, hence the tolerance.

A row whose vote cells are all empty (or all zero) is a galaxy nobody has labelled yet; it is
kept with zero counts and ``labelled=False``, as active learning needs such galaxies. A row
with only some empty cells is rejected.

A sample selection (``min_votes``, {question: minimum number of volunteers who answered it})
leaves out the good rows of labelled galaxies answered by fewer volunteers, as catalogue studies
select their samples (W+20's bar study kept galaxies with more than 10 bar votes). Such rows are
neither kept nor rejected: they are counted, and the log says how many. Unlabelled galaxies have
no votes to select on and are kept.

The id and vote checks live in :mod:`zooflow.vote_checks`, which votes arriving after ingest
share, the column checks in :mod:`zooflow.catalogue_columns` and the image paths and checks in
:mod:`zooflow.catalogue_images`; this module reads the catalogue, writes the result and reads its
columns back for later stages.
It reads and checks the catalogue in blocks of rows (``chunk_rows``) and writes each block as it
goes, so a survey of millions of galaxies is ingested in the memory of one block.

The clean table has ``id_str``, ``file_loc`` (relative to the working directory when the image
lies inside it, so a run moved with its results still finds its images; absolute otherwise: see
:mod:`zooflow.catalogue_images`), the other input columns unchanged,
every ``schema.label_cols`` and ``schema.total_cols`` as int64 (totals recomputed from the
counts), ``labelled`` and ``row`` (0-based data row of the input). Input order is kept.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zooflow.atomic import atomic_path
from zooflow.catalogue_columns import (
    FILE_COLUMN,
    IngestError,
    check_columns,
    resolve_column_mapping,
)
from zooflow.catalogue_images import image_paths, image_reasons
from zooflow.ids import ID_COLUMN, float_id_error, iter_csv_with_ids
from zooflow.schema import Schema
from zooflow.vote_checks import id_reasons, normalise_ids, tree_reasons, vote_counts

log = logging.getLogger(__name__)


LABELLED_COLUMN = "labelled"
ROW_COLUMN = "row"
REJECTED_COLUMNS = [ID_COLUMN, "file", "reason", ROW_COLUMN]

# How many rejected rows the too-many-rejected error quotes.
_MAX_REASONS_QUOTED = 5
# Rows checked at once: ingest's memory is that of one block, whatever the catalogue's length.
DEFAULT_CHUNK_ROWS = 2048
# A line in the log per this many rows checked (the length of a CSV is not known in advance).
_ROWS_PER_PROGRESS_LINE = 50_000


@dataclass
class IngestResult:
    """Kept and rejected rows of one catalogue, and how many good rows the sample selection left
    out: ``len(clean) + len(rejected) + n_deselected == n_input``."""

    clean: pd.DataFrame
    rejected: pd.DataFrame  # id_str, file, reason, row
    n_input: int
    n_deselected: int = 0

    def check_count(self) -> None:
        """Raise if a row went missing (an explicit check: it holds under ``python -O`` too)."""
        if len(self.clean) + len(self.rejected) + self.n_deselected != self.n_input:
            raise RuntimeError(
                f"ingest lost rows: {self.n_input} in, {len(self.clean)} kept + "
                f"{len(self.rejected)} rejected + {self.n_deselected} left out by the selection"
            )

    @property
    def rejected_fraction(self) -> float:
        return len(self.rejected) / self.n_input if self.n_input else 0.0


# --- reading and column mapping ------------------------------------------------------------


def iter_catalogue(
    path: str | Path, text_columns: tuple[str, ...] = (), chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Read a CSV (optionally compressed) or parquet catalogue in blocks of ``chunk_rows`` rows.

    ``text_columns`` are read from CSV as the exact text of each cell, so that ids such as
    ``dr7objid`` (18 digits), ``000123`` or ``NA`` survive instead of passing through float, int
    or missing. A catalogue with no rows gives one empty block (its columns).
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"catalogue {path} does not exist")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            parquet = pq.ParquetFile(path)
            if parquet.metadata.num_rows == 0:
                yield parquet.schema_arrow.empty_table().to_pandas()
                return
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield pa.Table.from_batches([batch]).to_pandas()
            return
        if ".csv" in suffixes or ".tsv" in suffixes:
            sep = "\t" if ".tsv" in suffixes else ","
            yield from iter_csv_with_ids(path, text_columns, chunk_rows, sep=sep)
            return
    except (ValueError, OSError, pa.ArrowException) as err:
        raise IngestError(f"catalogue {path} cannot be read: {err}") from err
    raise IngestError(
        f"catalogue {path}: unknown format {''.join(path.suffixes)!r}; "
        "expected .csv, .csv.gz, .tsv or .parquet"
    )


# --- public entry points --------------------------------------------------------------------


def iter_ingest(
    catalogue_path: str | Path,
    images_dir: str | Path,
    schema: Schema,
    *,
    column_mapping: Mapping[str, str] | str | None = None,
    id_column: str = ID_COLUMN,
    file_column: str = FILE_COLUMN,
    file_template: str | None = None,
    tree_tolerance: float = 0.1,
    tree_tolerance_votes: float = 1,
    threads: int = 1,
    votes_optional: bool = False,
    min_votes: Mapping[str, int] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[IngestResult]:
    """Check every catalogue row, ``chunk_rows`` rows at a time: one :class:`IngestResult` per block.

    Rows keep the catalogue's numbering, and an id repeated in a later block is rejected as a
    duplicate of its first occurrence wherever that was, so the blocks together are exactly
    what one pass over the whole table gives; only the ids seen so far are held across blocks.

    ``votes_optional`` (a prediction-only run): a catalogue with none of the tree's vote
    columns is read as galaxies nobody has labelled, instead of refused.

    ``column_mapping``: None when the catalogue already uses ``schema.label_cols`` names, a
    dict {catalogue column: schema column}, or the name of a mapping the tree ships
    (``"hart16"`` for the public GZ2 table). ``file_column`` paths are relative to
    ``images_dir`` unless absolute; without that column, ``file_template`` (``"{id_str}.png"``,
    any catalogue column may be named) builds them. Input ``*_total-votes``, ``labelled`` and
    ``row`` columns are replaced by recomputed ones.

    ``min_votes`` ({question: count}): the sample selection of the module docstring.
    """
    selection = check_selection(schema, min_votes)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if tree_tolerance < 0 or tree_tolerance_votes < 0:
        raise ValueError("tree_tolerance and tree_tolerance_votes must be non-negative")
    catalogue_path, images_dir = Path(catalogue_path), Path(images_dir)
    mapping = resolve_column_mapping(schema, column_mapping)
    blocks = iter_catalogue(catalogue_path, (id_column, file_column), chunk_rows)
    first = next(blocks)
    if len(first) == 0:
        raise IngestError(f"catalogue {catalogue_path} has no rows")
    unlabelled = votes_optional and not set(first.columns) & (set(schema.label_cols) | set(mapping))
    if unlabelled:
        # A catalogue to predict, not to learn from: every galaxy is unlabelled.
        log.info("ingest %s: no vote columns; every galaxy is unlabelled", catalogue_path)
        mapping = {}
    first_row: dict[str, int] = {}  # every id seen so far -> its row, for duplicates
    offset = 0
    for frame in itertools.chain([first], blocks):
        if len(frame) == 0:
            continue
        if unlabelled:
            frame = frame.assign(**dict.fromkeys(schema.label_cols, np.nan))
        if offset == 0:
            check_columns(
                frame, schema, mapping, id_column, file_column, file_template, catalogue_path
            )
        if pd.api.types.is_float_dtype(frame[id_column]):
            raise IngestError(float_id_error(id_column, catalogue_path))
        reasons: list[list[str]] = [[] for _ in range(len(frame))]
        ids = normalise_ids(frame[id_column])
        id_reasons(ids, frame[id_column], id_column, reasons, first_row, offset)
        paths = image_paths(frame, ids, images_dir, id_column, file_column, file_template, reasons)
        frame = frame.rename(columns=mapping)
        shown = {ours: theirs for theirs, ours in mapping.items()}  # reasons use the user's names
        counts, usable = vote_counts(frame, schema, reasons, shown)
        tree_reasons(counts, usable, schema, tree_tolerance, tree_tolerance_votes, reasons, shown)
        unusable = image_reasons(paths, threads)
        for row, path in enumerate(paths):
            if path is not None and unusable[path] is not None:
                reasons[row].append(unusable[path])

        kept = np.array([not r for r in reasons], dtype=bool)
        deselected = _deselected(counts, kept, schema, selection)
        rejected_rows = np.flatnonzero(~kept)
        rejected = pd.DataFrame(
            {
                ID_COLUMN: [ids[r] or "" for r in rejected_rows],
                "file": [paths[r] or "" for r in rejected_rows],
                "reason": ["; ".join(reasons[r]) for r in rejected_rows],
                ROW_COLUMN: (rejected_rows + offset).astype(np.int64),
            },
            columns=REJECTED_COLUMNS,
        )
        clean = _clean_table(
            frame, schema, ids, paths, counts, kept & ~deselected, id_column, file_column, offset
        )
        yield IngestResult(
            clean=clean,
            rejected=rejected,
            n_input=len(frame),
            n_deselected=int(deselected.sum()),
        )
        offset += len(frame)
        if offset // _ROWS_PER_PROGRESS_LINE > (offset - len(frame)) // _ROWS_PER_PROGRESS_LINE:
            log.info("ingest %s: %d rows checked", catalogue_path, offset)


def check_selection(schema: Schema, min_votes: Mapping[str, int] | None) -> dict[int, int]:
    """{question index: minimum volunteers}; refuses a question the tree lacks or a bad count."""
    selection = {}
    for question, minimum in (min_votes or {}).items():
        if question not in schema.question_names:
            raise ValueError(
                f"min_votes names question {question!r}, which tree {schema.name!r} does not "
                f"have; its questions: {', '.join(schema.question_names)}"
            )
        if isinstance(minimum, bool) or not isinstance(minimum, int | np.integer) or minimum < 0:
            raise ValueError(
                f"min_votes[{question!r}] must be a non-negative integer, got {minimum!r}"
            )
        selection[schema.question_names.index(question)] = int(minimum)
    return selection


def _deselected(
    counts: np.ndarray, kept: np.ndarray, schema: Schema, selection: Mapping[int, int]
) -> np.ndarray:
    """Good, labelled rows that some selected question's volunteers are too few for."""
    out = np.zeros(len(kept), dtype=bool)
    if not selection or not kept.any():
        return out
    rows = np.flatnonzero(kept)
    votes = counts[rows]
    totals = schema.question_totals(votes)
    too_few = np.zeros(len(rows), dtype=bool)
    for question, minimum in selection.items():
        too_few |= totals[:, question] < minimum
    out[rows] = too_few & (votes.sum(axis=1) > 0)
    return out


def ingest_catalogue(
    catalogue_path: str | Path, images_dir: str | Path, schema: Schema, **options
) -> IngestResult:
    """Check every catalogue row; return the kept rows (clean table) and the rejected ones.

    ``options`` are :func:`iter_ingest`'s. The whole result is held in memory: a workflow
    writes a catalogue of any length with :func:`ingest_to_files` instead.
    """
    results = list(iter_ingest(catalogue_path, images_dir, schema, **options))
    result = IngestResult(
        clean=_concat([r.clean for r in results]),
        rejected=_concat([r.rejected for r in results]),
        n_input=sum(r.n_input for r in results),
        n_deselected=sum(r.n_deselected for r in results),
    )
    result.check_count()
    n_unlabelled = int((~result.clean[LABELLED_COLUMN]).sum())
    _log_totals(
        catalogue_path, result.n_input, n_unlabelled, len(result.rejected), result.n_deselected
    )
    return result


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    # An empty block's text columns have no type to keep; leaving it out keeps the others'.
    tables = [t for t in tables if len(t)] or tables[:1]
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def _log_totals(
    catalogue_path, n_input: int, n_unlabelled: int, n_rejected: int, n_deselected: int = 0
) -> None:
    log.info(
        "ingest %s: %d rows, %d kept (%d unlabelled), %d rejected",
        catalogue_path,
        n_input,
        n_input - n_rejected - n_deselected,
        n_unlabelled,
        n_rejected,
    )
    if n_deselected:
        log.info(
            "ingest %s: %d good rows left out by the sample selection (ingest.min_votes)",
            catalogue_path,
            n_deselected,
        )


def _clean_table(
    frame: pd.DataFrame,
    schema: Schema,
    ids: list[str | None],
    paths: list[str | None],
    counts: np.ndarray,
    kept: np.ndarray,
    id_column: str,
    file_column: str,
    offset: int = 0,
) -> pd.DataFrame:
    replaced = {id_column, file_column, ID_COLUMN, FILE_COLUMN, LABELLED_COLUMN, ROW_COLUMN}
    replaced |= set(schema.label_cols) | set(schema.total_cols)
    extras = [c for c in frame.columns if c not in replaced]
    kept_rows = np.flatnonzero(kept)
    votes = counts[kept].astype(np.int64)
    totals = schema.question_totals(votes).astype(np.int64)
    head = pd.DataFrame(
        {
            ID_COLUMN: pd.Series([ids[r] for r in kept_rows], dtype=object),
            FILE_COLUMN: pd.Series([paths[r] for r in kept_rows], dtype=object),
        }
    )
    tail = pd.DataFrame(
        {
            **{c: votes[:, j] for j, c in enumerate(schema.label_cols)},
            **{c: totals[:, i] for i, c in enumerate(schema.total_cols)},
            LABELLED_COLUMN: votes.sum(axis=1) > 0,
            ROW_COLUMN: (kept_rows + offset).astype(np.int64),
        }
    )
    # .loc keeps every carried-through column's dtype exactly as read.
    carried = frame.loc[kept, extras].reset_index(drop=True)
    return pd.concat([head, carried, tail], axis=1)


def ingest_to_files(
    catalogue_path: str | Path,
    images_dir: str | Path,
    schema: Schema,
    clean_path: str | Path,
    rejected_path: str | Path,
    max_rejected_fraction: float,
    **options,
) -> None:
    """Ingest a catalogue of any length into the clean parquet and ``rejected.csv``, block by block.

    ``options`` are :func:`iter_ingest`'s; memory stays that of one block of ``chunk_rows`` rows
    (plus the ids seen). Fails, after writing both files, when more than
    ``max_rejected_fraction`` of the rows were rejected.
    """
    blocks = iter_ingest(catalogue_path, images_dir, schema, **options)
    totals = _write_blocks(blocks, clean_path, rejected_path, max_rejected_fraction)
    _log_totals(
        catalogue_path, totals.n_input, totals.n_unlabelled, totals.n_rejected, totals.n_deselected
    )
    totals.check(rejected_path, max_rejected_fraction)


def write_ingest(
    result: IngestResult,
    clean_path: str | Path,
    rejected_path: str | Path,
    max_rejected_fraction: float,
) -> None:
    """Write an in-memory result as :func:`ingest_to_files` would, and fail the same way."""
    totals = _write_blocks([result], clean_path, rejected_path, max_rejected_fraction)
    totals.check(rejected_path, max_rejected_fraction)


@dataclass
class _Totals:
    n_input: int = 0
    n_rejected: int = 0
    n_unlabelled: int = 0
    n_deselected: int = 0
    first_rejected: pd.DataFrame | None = None  # quoted when too many rows were rejected

    def add(self, block: IngestResult) -> None:
        self.n_input += block.n_input
        self.n_rejected += len(block.rejected)
        self.n_deselected += block.n_deselected
        self.n_unlabelled += int((~block.clean[LABELLED_COLUMN]).sum())
        if self.first_rejected is None or len(self.first_rejected) < _MAX_REASONS_QUOTED:
            self.first_rejected = _concat(
                [t for t in (self.first_rejected, block.rejected) if t is not None]
            ).head(_MAX_REASONS_QUOTED)
        block.check_count()

    def check(self, rejected_path: str | Path, max_rejected_fraction: float) -> None:
        fraction = self.n_rejected / self.n_input if self.n_input else 0.0
        if fraction <= max_rejected_fraction:
            return
        quoted = self.first_rejected
        examples = "\n".join(
            f"  row {row} ({ID_COLUMN} {ident!r}): {reason}"
            for row, ident, reason in zip(
                quoted[ROW_COLUMN], quoted[ID_COLUMN], quoted["reason"], strict=True
            )
        )
        raise IngestError(
            f"{self.n_rejected} of {self.n_input} catalogue rows rejected "
            f"({fraction:.1%}), more than max_rejected_fraction={max_rejected_fraction:.1%}. "
            f"Every reason is in {rejected_path}; the first ones:\n{examples}"
        )


def _write_blocks(
    blocks: Iterable[IngestResult],
    clean_path: str | Path,
    rejected_path: str | Path,
    max_rejected_fraction: float,
) -> _Totals:
    """Stream the blocks' rejected rows into ``rejected_path`` and their clean rows into
    ``clean_path`` (each block a parquet part first, then joined); both appear only complete."""
    if not 0.0 <= max_rejected_fraction <= 1.0:
        raise ValueError(f"max_rejected_fraction must be in [0, 1], got {max_rejected_fraction}")
    clean_path, rejected_path = Path(clean_path), Path(rejected_path)
    clean_path.parent.mkdir(parents=True, exist_ok=True)
    totals = _Totals()
    with (
        tempfile.TemporaryDirectory(dir=clean_path.parent, prefix=".ingest-parts-") as parts_dir,
        atomic_path(rejected_path) as rejected_temporary,
    ):
        parts = []
        with open(rejected_temporary, "w", newline="") as rejected_file:
            for number, block in enumerate(blocks):
                totals.add(block)
                block.rejected.to_csv(rejected_file, index=False, header=number == 0)
                parts.append(Path(parts_dir) / f"{number:06d}.parquet")
                block.clean.to_parquet(parts[-1], index=False)
        with atomic_path(clean_path) as clean_temporary:
            _join_parquet_parts(parts, clean_temporary)
    return totals


def _join_parquet_parts(parts: list[Path], out: Path) -> None:
    """One parquet file from parts written block by block.

    Blocks of a CSV are typed one at a time, so a carried-through column can be int64 in one
    block and float64 (a missing cell) or text in another: each column takes the type that
    holds every block's values (int64 and float64 give float64; anything else mixed gives text),
    as reading the whole table at once would.
    """
    if len(parts) == 1:
        shutil.copyfile(parts[0], out)
        return
    schemas = [pq.read_schema(part) for part in parts]
    fields = []
    for name in schemas[0].names:
        types = [schema.field(name).type for schema in schemas]
        try:
            fields.append(
                pa.unify_schemas(
                    [pa.schema([(name, t)]) for t in types], promote_options="permissive"
                ).field(name)
            )
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            fields.append(pa.field(name, pa.string()))
    # No pandas metadata: the first block's would describe its own types, not the joined ones.
    joined = pa.schema(fields)
    with pq.ParquetWriter(out, joined) as writer:
        for part in parts:
            # One thread: the dataset reader's thread pools cost more memory than the table.
            writer.write_table(pq.ParquetFile(part).read(use_threads=False).cast(joined))


def catalogue_length(catalogue_path: str | Path) -> int:
    """Rows of a clean catalogue, from its parquet footer (nothing else is read)."""
    return pq.ParquetFile(catalogue_path).metadata.num_rows


def iter_catalogue_columns(
    catalogue_path: str | Path, columns: Sequence[str], chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Columns of a clean catalogue that later stages need, ``chunk_rows`` rows at a time.

    Every block is checked as it is read: all columns present, no empty cell, no id seen
    before; errors name the catalogue and the catalogue's row. Only the ids are held across
    blocks, so a later stage reads a catalogue of any length in bounded memory.
    """
    catalogue_path = Path(catalogue_path)
    parquet = pq.ParquetFile(catalogue_path)
    absent = [c for c in columns if c not in parquet.schema_arrow.names]
    if absent:
        wanted = " and ".join(repr(c) for c in columns)
        raise ValueError(
            f"{catalogue_path}: the catalogue needs columns {wanted} ({absent} absent)"
        )
    first_row: dict[str, int] = {}
    offset = 0
    batches = parquet.iter_batches(batch_size=chunk_rows, columns=list(columns), use_threads=False)
    for batch in batches:
        table = batch.to_pandas()
        for column in columns:
            missing = table[column].isna().to_numpy()
            if missing.any():
                row = offset + int(np.flatnonzero(missing)[0])
                raise ValueError(f"{catalogue_path}: row {row} has no {column}")
        if ID_COLUMN in columns:
            for index, ident in enumerate(table[ID_COLUMN].astype(str).tolist()):
                first = first_row.setdefault(ident, offset + index)
                if first != offset + index:
                    raise ValueError(
                        f"{catalogue_path}: {ID_COLUMN} must be unique; rows "
                        f"{[first, offset + index]} share {ident!r}"
                    )
        yield table
        offset += len(table)
