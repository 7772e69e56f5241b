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

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import tensorflow as tf

from zooflow.atomic import atomic_path
from zooflow.jsonfile import dumps
from zooflow.runlog import Progress
from zooflow.schema import Schema
from zooflow.splits import SPLITS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_MANIFEST_KEYS = ("split", "count", "label_cols", "image_shape", "examples_per_shard", "files")
IMAGE_ENCODING = "raw_uint8"
_HASH_BLOCK = 1 << 20


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


def _read_votes(catalogue_path: Path, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue ids and (galaxies, answers) int64 vote counts, checked."""
    present = set(pq.read_schema(catalogue_path).names)
    missing = [c for c in ["id_str", *schema.label_cols] if c not in present]
    if missing:
        raise ShardError(
            f"{catalogue_path}: catalogue lacks column(s) {missing} needed by tree {schema.name!r}"
        )
    table = pd.read_parquet(catalogue_path, columns=["id_str", *schema.label_cols])
    votes = table[schema.label_cols].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(votes) | (votes < 0) | (votes != np.round(votes))
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ShardError(
            f"{catalogue_path}: row {row} (id_str {table['id_str'].iloc[row]!r}) column "
            f"{schema.label_cols[col]!r} has {votes[row, col]:g}; vote counts must be "
            "non-negative whole numbers"
        )
    ids = table["id_str"].astype(str)
    if ids.duplicated().any():
        raise ShardError(
            f"{catalogue_path}: id_str {ids[ids.duplicated()].iloc[0]!r} appears more than once"
        )
    return ids.to_numpy(), votes.astype(np.int64)


def _read_split_names(splits_path: Path, catalogue_ids: np.ndarray) -> np.ndarray:
    """The split of every catalogue galaxy, in catalogue order, from the splits CSV."""
    splits = pd.read_csv(splits_path, dtype=str, keep_default_na=False)
    if not {"id_str", "split"} <= set(splits.columns):
        raise ShardError(f"{splits_path}: needs columns id_str and split, has {list(splits)}")
    unknown = ~splits["split"].isin(SPLITS)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ShardError(
            f"{splits_path}: row {row} has split {splits['split'].iloc[row]!r}, not one of {SPLITS}"
        )
    if splits["id_str"].duplicated().any():
        first = splits["id_str"][splits["id_str"].duplicated()].iloc[0]
        raise ShardError(f"{splits_path}: id_str {first!r} appears more than once")
    split_of = splits.set_index("id_str")["split"]
    names = split_of.reindex(catalogue_ids).to_numpy()
    unassigned = pd.isna(names)
    if unassigned.any():
        examples = catalogue_ids[unassigned][:3].tolist()
        raise ShardError(
            f"{splits_path}: {int(unassigned.sum())} catalogue galaxies have no split "
            f"(e.g. {examples}); the splits file is older than the catalogue"
        )
    if len(split_of) != len(catalogue_ids):
        extra = sorted(set(split_of.index) - set(catalogue_ids))[:3]
        raise ShardError(
            f"{splits_path}: lists {len(split_of) - len(catalogue_ids)} galaxies that are not "
            f"in the catalogue (e.g. {extra})"
        )
    return names


@dataclass(frozen=True)
class _ShardJob:
    path: Path
    rows: np.ndarray  # catalogue rows, increasing


class _ShardWriter:
    """Writes whole shards; safe to call from several threads at once."""

    def __init__(self, images: h5py.Dataset, ids, votes) -> None:
        self._images = images
        self._ids = ids
        self._votes = votes
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
                for image, row in zip(images, job.rows, strict=True):
                    writer.write(
                        serialize_example(
                            image,
                            self._votes[row].tolist(),
                            self._ids[row],
                        )
                    )
            checksum = file_sha256(temporary)
        return {"name": job.path.name, "count": len(job.rows), "sha256": checksum}


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
    catalogue, splits and image ids are read once for all splits; ``threads`` threads each write
    whole shards (of any split), so the bytes do not depend on the number of threads.
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
    ids, votes = _read_votes(catalogue_path, schema)
    split_names = _read_split_names(Path(splits_path), ids)
    rows_of = {split: np.flatnonzero(split_names == split) for split in out_dirs}
    jobs_of = {
        split: [
            _ShardJob(out_dirs[split] / shard_name(k), rows[start : start + examples_per_shard])
            for k, start in enumerate(range(0, len(rows), examples_per_shard))
        ]
        for split, rows in rows_of.items()
    }
    for out_dir in out_dirs.values():
        out_dir.mkdir(parents=True, exist_ok=True)
        # Until the new manifest lands, the folder must not look complete.
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    with h5py.File(images_path, "r") as h5:
        image_ids = h5["id_str"].asstr()[...]
        if len(image_ids) != len(ids) or not np.array_equal(image_ids.astype(str), ids):
            raise ShardError(
                f"{images_path} holds {len(image_ids)} images whose ids do not match the "
                f"{len(ids)} galaxies of {catalogue_path} in order; re-run preprocessing"
            )
        image_shape = [int(n) for n in h5["images"].shape[1:]]
        writer = _ShardWriter(h5["images"], ids, votes)
        all_jobs = [job for jobs in jobs_of.values() for job in jobs]
        progress = Progress("shards", sum(len(job.rows) for job in all_jobs))

        def counted(entries):
            return list(progress.iterate(entries, size=lambda entry: entry["count"]))

        if threads == 1 or len(all_jobs) <= 1:
            written = counted(map(writer, all_jobs))
        else:
            with ThreadPoolExecutor(min(threads, len(all_jobs))) as pool:
                written = counted(pool.map(writer, all_jobs))

    manifests = {}
    entries = iter(written)
    for split, jobs in jobs_of.items():
        out_dir = out_dirs[split]
        files = [next(entries) for _ in jobs]
        # Shards of an earlier, longer run, and temporaries of an interrupted one, must not linger.
        keep = {entry["name"] for entry in files}
        for stale in [*out_dir.glob("shard_*.tfrecord"), *out_dir.glob(".partial.*.shard_*")]:
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        manifests[split] = {
            "split": split,
            "count": int(len(rows_of[split])),
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
            len(rows_of[split]),
            len(files),
            examples_per_shard,
            out_dir,
        )
    elapsed = time.perf_counter() - started
    total = sum(len(rows) for rows in rows_of.values())
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
