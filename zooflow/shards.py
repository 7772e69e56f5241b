"""One split's galaxies as TFRecord shards plus a checksummed manifest, and the readers for them.

Every example holds three features:

* ``image``  bytes, the preprocessed ``(S, S, C)`` uint8 image's raw pixels in row-major
  order (the shape is the manifest's ``image_shape``): no codec to run when writing or in
  every training epoch, and the same size as an uncompressed PNG;
* ``votes``  int64 list of vote counts in ``schema.label_cols`` order;
* ``id_str`` bytes, the galaxy id (UTF-8).

A split lives in its own folder: ``shard_00000.tfrecord``, ``shard_00001.tfrecord``, ... with
``examples_per_shard`` galaxies each (the last may hold fewer), in catalogue order, and
``manifest.json``::

    {"split", "count", "label_cols", "image_shape": [S, S, C], "image_encoding": "raw_uint8",
     "examples_per_shard", "files": [{"name", "count", "sha256"}, ...]}

Shards and manifest are each written under a temporary name and renamed; the manifest goes last,
so a folder whose manifest verifies is complete.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import tensorflow as tf

from zooflow.atomic import atomic_path
from zooflow.catalogue import catalogue_length, iter_catalogue_columns
from zooflow.jsonfile import dumps
from zooflow.runlog import Progress
from zooflow.schema import Schema
from zooflow.splits import SPLITS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_MANIFEST_KEYS = ("split", "count", "label_cols", "image_shape", "examples_per_shard", "files")
IMAGE_ENCODING = "raw_uint8"
_HASH_BLOCK = 1 << 20
# Catalogue rows read at once: writing shards holds a block and a few shards, not the survey.
_BLOCK_ROWS = 2048


class ShardError(ValueError):
    """Shards or a manifest that are missing, corrupt or inconsistent with each other."""


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.tfrecord"


# --- writing ---------------------------------------------------------------------------------


def serialize_example(image: np.ndarray, votes: Sequence[int], id_str: str) -> bytes:
    """One galaxy as a serialized ``tf.train.Example`` (map keys in a fixed order); ``image``
    is the ``(S, S, C)`` uint8 array, stored as its raw bytes."""
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"shard images are (S, S, C) uint8, got {image.dtype} {image.shape}")
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(image).tobytes()])
                ),
                "votes": tf.train.Feature(int64_list=tf.train.Int64List(value=votes)),
                "id_str": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[id_str.encode("utf-8")])
                ),
            }
        )
    )
    # Protobuf map order is unspecified unless asked: deterministic bytes make shards comparable.
    return example.SerializeToString(deterministic=True)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _split_counts(splits_path: Path, n_catalogue: int) -> dict[str, int]:
    """Galaxies per split in the splits CSV, checked against the catalogue's length: one pass
    over the file before any shard, so progress and empty splits are known up front."""
    counts = dict.fromkeys(SPLITS, 0)
    n_rows = 0
    for block in _splits_blocks(splits_path):
        unknown = ~block["split"].isin(SPLITS)
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise ShardError(
                f"{splits_path}: row {n_rows + row} has split {block['split'].iloc[row]!r}, "
                f"not one of {SPLITS}"
            )
        for name, count in block["split"].value_counts().items():
            counts[name] += int(count)
        n_rows += len(block)
    if n_rows < n_catalogue:
        raise ShardError(
            f"{splits_path}: {n_catalogue - n_rows} catalogue galaxies have no split (it lists "
            f"{n_rows} of {n_catalogue}); the splits file is older than the catalogue: re-run "
            "the split step"
        )
    if n_rows > n_catalogue:
        raise ShardError(
            f"{splits_path}: lists {n_rows - n_catalogue} galaxies that are not in the catalogue "
            f"({n_rows} rows for {n_catalogue} galaxies); re-run the split step"
        )
    return counts


def _splits_blocks(splits_path: Path) -> Iterator[pd.DataFrame]:
    blocks = pd.read_csv(splits_path, dtype=str, keep_default_na=False, chunksize=_BLOCK_ROWS)
    with blocks:
        for block in blocks:
            if not {"id_str", "split"} <= set(block.columns):
                raise ShardError(
                    f"{splits_path}: needs columns id_str and split, has {list(block)}"
                )
            yield block


@dataclass
class _Block:
    """Consecutive catalogue rows: their ids, int64 votes and split names, all checked."""

    first_row: int
    ids: np.ndarray
    votes: np.ndarray
    splits: np.ndarray


def _read_blocks(
    images_path: Path,
    image_ids: h5py.Dataset,
    catalogue_path: Path,
    splits_path: Path,
    schema: Schema,
) -> Iterator[_Block]:
    """The catalogue, the splits CSV and the images' ids read side by side, ``_BLOCK_ROWS`` rows
    at a time, so memory stays that of a block whatever the survey's size. All three are in
    catalogue order (preprocessing and splitting write them so); an error names the step to
    re-run when they are not."""
    columns = ["id_str", *schema.label_cols]
    missing = [c for c in columns if c not in pq.read_schema(catalogue_path).names]
    if missing:
        raise ShardError(
            f"{catalogue_path}: catalogue lacks column(s) {missing} needed by tree {schema.name!r}"
        )
    splits = _splits_blocks(splits_path)
    split_ids = split_names = np.empty(0, dtype=object)
    first_row = 0
    try:
        for table in iter_catalogue_columns(catalogue_path, columns, chunk_rows=_BLOCK_ROWS):
            n = len(table)
            ids = table["id_str"].astype(str).to_numpy(dtype=object)
            votes = table[schema.label_cols].to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(votes) | (votes < 0) | (votes != np.round(votes))
            if bad.any():
                row, col = (int(i) for i in np.argwhere(bad)[0])
                raise ShardError(
                    f"{catalogue_path}: row {first_row + row} (id_str {ids[row]!r}) column "
                    f"{schema.label_cols[col]!r} has {votes[row, col]:g}; vote counts must be "
                    "non-negative whole numbers"
                )
            in_images = image_ids.asstr()[first_row : first_row + n].astype(object)
            if not np.array_equal(in_images, ids):
                row = int(np.flatnonzero(in_images != ids)[0])
                raise ShardError(
                    f"{images_path} holds image {in_images[row]!r} at row "
                    f"{first_row + row}, where {catalogue_path} has galaxy {ids[row]!r}: the "
                    "images are not the catalogue's, in order; re-run preprocessing"
                )
            while len(split_ids) < n:  # the splits CSV's blocks need not line up with these
                more = next(splits)
                split_ids = np.concatenate([split_ids, more["id_str"].to_numpy(dtype=object)])
                split_names = np.concatenate([split_names, more["split"].to_numpy(dtype=object)])
            if not np.array_equal(split_ids[:n], ids):
                row = int(np.flatnonzero(split_ids[:n] != ids)[0])
                raise ShardError(
                    f"{splits_path}: row {first_row + row} is galaxy {split_ids[row]!r}, the "
                    f"catalogue's is {ids[row]!r}: the splits file is not the catalogue's, in "
                    "order; re-run the split step"
                )
            yield _Block(first_row, ids, votes.astype(np.int64), split_names[:n])
            split_ids, split_names = split_ids[n:], split_names[n:]
            first_row += n
    except ShardError:
        raise
    except ValueError as err:  # an empty cell or a repeated id, found while reading
        raise ShardError(str(err)) from err


@dataclass(frozen=True)
class _ShardJob:
    path: Path
    rows: np.ndarray  # catalogue rows, increasing
    ids: list[str]
    votes: np.ndarray  # (rows, answers) int64


class _ShardWriter:
    """Writes whole shards; safe to call from several threads at once."""

    def __init__(self, images: h5py.Dataset) -> None:
        self._images = images
        self._read_lock = threading.Lock()  # one HDF5 reader at a time; h5py serialises anyway

    def _read_images(self, rows: np.ndarray) -> np.ndarray:
        with self._read_lock:
            span = int(rows[-1] - rows[0] + 1)
            if span <= 2 * len(rows):  # dense rows: one contiguous read beats many small ones
                return self._images[int(rows[0]) : int(rows[-1]) + 1][rows - rows[0]]
            return np.stack([self._images[int(row)] for row in rows])

    def __call__(self, job: _ShardJob) -> dict:
        images = self._read_images(job.rows)
        with atomic_path(job.path) as temporary:
            with tf.io.TFRecordWriter(str(temporary)) as writer:
                for image, votes, id_str in zip(images, job.votes, job.ids, strict=True):
                    writer.write(serialize_example(image, votes.tolist(), id_str))
            checksum = file_sha256(temporary)
        return {"name": job.path.name, "count": len(job.rows), "sha256": checksum}


class _Router:
    """Gathers each split's rows from the blocks and hands a shard's worth at a time to the
    writer, over ``threads`` threads with a few shards in flight (memory stays bounded)."""

    def __init__(
        self,
        writer: _ShardWriter,
        out_dirs: Mapping[str, Path],
        per_shard: int,
        threads: int,
        progress: Progress,
    ):
        self.writer, self.out_dirs, self.per_shard = writer, out_dirs, per_shard
        self.pending = {split: [] for split in out_dirs}  # (rows, ids, votes) not yet in a shard
        self.waiting = dict.fromkeys(out_dirs, 0)
        self.results: dict[str, list[Future]] = {split: [] for split in out_dirs}  # shard order
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.in_flight: collections.deque[Future] = collections.deque()
        self.max_in_flight = 2 * threads
        self.progress, self.progress_lock = progress, threading.Lock()

    def __enter__(self) -> _Router:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _write(self, job: _ShardJob) -> dict:
        entry = self.writer(job)
        with self.progress_lock:
            self.progress.advance(entry["count"])
        return entry

    def add(self, block: _Block) -> None:
        for split in self.out_dirs:
            rows = np.flatnonzero(block.splits == split)
            if len(rows):
                self.pending[split].append(
                    (rows + block.first_row, block.ids[rows], block.votes[rows])
                )
                self.waiting[split] += len(rows)
            while self.waiting[split] >= self.per_shard:
                self._cut(split, self.per_shard)

    def finish(self) -> dict[str, list[dict]]:
        """Write every split's last, shorter shard; {split: shard entries in order}."""
        for split in self.out_dirs:
            if self.waiting[split]:
                self._cut(split, self.waiting[split])
        return {split: [r.result() for r in results] for split, results in self.results.items()}

    def _cut(self, split: str, n: int) -> None:
        rows, ids, votes = (
            np.concatenate(parts) for parts in zip(*self.pending[split], strict=True)
        )
        keep = (rows[n:], ids[n:], votes[n:])
        self.pending[split] = [keep] if len(keep[0]) else []
        self.waiting[split] -= n
        path = self.out_dirs[split] / shard_name(len(self.results[split]))
        job = _ShardJob(path, rows[:n], ids[:n].tolist(), votes[:n])
        if self.pool is None:
            future = Future()
            future.set_result(self._write(job))
        else:
            while len(self.in_flight) >= self.max_in_flight:
                self.in_flight.popleft().result()
            future = self.pool.submit(self._write, job)
            self.in_flight.append(future)
        self.results[split].append(future)


def write_split_shards(
    images_path: str | Path,
    catalogue_path: str | Path,
    splits_path: str | Path,
    split: str,
    out_dir: str | Path,
    schema: Schema,
    *,
    examples_per_shard: int,
    threads: int = 1,
) -> dict:
    """Write the galaxies of one split into ``out_dir`` as TFRecord shards; return the manifest.

    See :func:`write_all_shards`, which this calls with the one split.
    """
    return write_all_shards(
        images_path,
        catalogue_path,
        splits_path,
        {split: out_dir},
        schema,
        examples_per_shard=examples_per_shard,
        threads=threads,
    )[split]


def write_all_shards(
    images_path: str | Path,
    catalogue_path: str | Path,
    splits_path: str | Path,
    out_dirs: Mapping[str, str | Path],
    schema: Schema,
    *,
    examples_per_shard: int,
    threads: int = 1,
) -> dict[str, dict]:
    """Write the galaxies of each split in ``out_dirs`` ({split: folder}) as TFRecord shards.

    Returns ``{split: manifest}``. Galaxies keep catalogue order: shard ``k`` of a split holds
    its galaxies ``k * examples_per_shard`` to ``(k + 1) * examples_per_shard - 1``. The
    catalogue, splits and image ids are read once for all splits, side by side in blocks, so
    memory stays that of a block and a few shards whatever the survey's size; ``threads``
    threads each write whole shards (of any split), so the bytes do not depend on the number of
    threads.
    """
    unknown = [split for split in out_dirs if split not in SPLITS]
    if unknown:
        raise ValueError(f"split must be one of {SPLITS}, got {unknown[0]!r}")
    if isinstance(examples_per_shard, bool) or examples_per_shard < 1:
        raise ValueError(f"examples_per_shard must be a positive integer, got {examples_per_shard}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    started = time.perf_counter()
    images_path, catalogue_path = Path(images_path), Path(catalogue_path)
    out_dirs = {split: Path(folder) for split, folder in out_dirs.items()}
    n_catalogue = catalogue_length(catalogue_path)
    counts = _split_counts(Path(splits_path), n_catalogue)
    for out_dir in out_dirs.values():
        out_dir.mkdir(parents=True, exist_ok=True)
        # Until the new manifest lands, the folder must not look complete.
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    with h5py.File(images_path, "r") as h5:
        if len(h5["id_str"]) != n_catalogue:
            raise ShardError(
                f"{images_path} holds {len(h5['id_str'])} images for the {n_catalogue} galaxies "
                f"of {catalogue_path}; re-run preprocessing"
            )
        image_shape = [int(n) for n in h5["images"].shape[1:]]
        progress = Progress("shards", sum(counts[split] for split in out_dirs))
        router = _Router(
            _ShardWriter(h5["images"]), out_dirs, examples_per_shard, threads, progress
        )
        with router:
            blocks = _read_blocks(
                images_path, h5["id_str"], catalogue_path, Path(splits_path), schema
            )
            for block in blocks:
                router.add(block)
            written = router.finish()

    manifests = {}
    for split, files in written.items():
        out_dir = out_dirs[split]
        # Shards of an earlier, longer run, and temporaries of an interrupted one, must not linger.
        keep = {entry["name"] for entry in files}
        for stale in [*out_dir.glob("shard_*.tfrecord"), *out_dir.glob(".partial.*.shard_*")]:
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        manifests[split] = {
            "split": split,
            "count": counts[split],
            "label_cols": list(schema.label_cols),
            "image_shape": image_shape,
            "image_encoding": IMAGE_ENCODING,
            "examples_per_shard": int(examples_per_shard),
            "files": files,
        }
        with atomic_path(out_dir / MANIFEST_NAME) as temporary:
            temporary.write_text(dumps(manifests[split], indent=2) + "\n")
        log.info(
            "split %r: %d galaxies in %d shards of up to %d -> %s",
            split,
            counts[split],
            len(files),
            examples_per_shard,
            out_dir,
        )
    elapsed = time.perf_counter() - started
    total = sum(counts[split] for split in out_dirs)
    log.info(
        "%d galaxies written in %.1f s (%.0f galaxies/s, %d threads)",
        total,
        elapsed,
        total / max(elapsed, 1e-9),
        threads,
    )
    return manifests


# --- reading ---------------------------------------------------------------------------------


def read_manifest(manifest_path: str | Path, *, verify_checksums: bool = True) -> dict:
    """Load a split's manifest (or the manifest of a shard folder) and check its shards.

    Every listed shard must exist and, unless ``verify_checksums`` is False, match its SHA-256;
    the per-file counts must add up to ``count``.
    """
    manifest_path = Path(manifest_path)
    if manifest_path.is_dir():
        manifest_path = manifest_path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ShardError(f"{manifest_path}: manifest missing (shards not written, or unfinished)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ShardError(f"{manifest_path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or any(key not in manifest for key in _MANIFEST_KEYS):
        raise ShardError(f"{manifest_path}: a manifest needs the keys {list(_MANIFEST_KEYS)}")
    if manifest.get("image_encoding") != IMAGE_ENCODING:
        raise ShardError(
            f"{manifest_path}: these shards store images as "
            f"{manifest.get('image_encoding', 'PNG (an earlier zooflow)')}, not {IMAGE_ENCODING}; "
            "write them again (snakemake --forcerun shards)"
        )
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or not {"name", "count", "sha256"} <= set(entry):
            raise ShardError(f"{manifest_path}: file entry {entry!r} needs name, count, sha256")
        if Path(entry["name"]).name != entry["name"]:
            raise ShardError(f"{manifest_path}: shard name {entry['name']!r} is not a file name")
    listed = sum(int(entry["count"]) for entry in manifest["files"])
    if listed != manifest["count"]:
        raise ShardError(
            f"{manifest_path}: files hold {listed} examples but count says {manifest['count']}"
        )
    for entry in manifest["files"]:
        shard = manifest_path.parent / entry["name"]
        if not shard.is_file():
            raise ShardError(f"{manifest_path}: shard {shard} is missing")
        if verify_checksums:
            actual = file_sha256(shard)
            if actual != entry["sha256"]:
                raise ShardError(
                    f"{manifest_path}: shard {shard} is corrupt or was changed: sha256 "
                    f"{actual} does not match the manifest's {entry['sha256']}"
                )
    return manifest


def parse_example(serialized: tf.Tensor, n_answers: int, image_shape: Sequence[int]) -> dict:
    """One serialized example -> ``{"image": uint8 (S, S, C), "votes": int64 (A,), "id_str"}``.

    Pure TensorFlow ops, so it runs inside ``tf.data.Dataset.map``; an image whose byte count
    does not fit ``image_shape`` fails at run time rather than passing silently.
    """
    image_shape = [int(n) for n in image_shape]
    features = tf.io.parse_single_example(
        serialized,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "votes": tf.io.FixedLenFeature([n_answers], tf.int64),
            "id_str": tf.io.FixedLenFeature([], tf.string),
        },
    )
    image = tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), image_shape)
    return {
        "image": image,
        "votes": features["votes"],
        "id_str": features["id_str"],
    }
