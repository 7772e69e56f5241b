"""TFRecord shards of zooflow.shards: round trip, manifest, checksums, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from zooflow.data import load_split, make_dataset, shard_files
from zooflow.preprocess import preprocess_catalogue
from zooflow.schema import load_schema
from zooflow.shards import (
    ShardError,
    parse_example,
    read_manifest,
    write_all_shards,
    write_split_shards,
)
from zooflow.splits import SPLITS

SCHEMA = load_schema("gz2")
N_GALAXIES = 23
# Row i goes to SPLITS[PATTERN[i % 6]]: test 4, val 4, initial 4, pool 11 of 23.
PATTERN = [0, 3, 1, 3, 2, 3]


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> dict[str, Path]:
    """23 galaxies with images of mixed sizes, votes, preprocessed HDF5 and a splits CSV."""
    folder = tmp_path_factory.mktemp("survey")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(N_GALAXIES):
        size = (24, 24) if i % 4 else (30, 20)
        path = folder / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    votes = rng.integers(0, 50, size=(N_GALAXIES, SCHEMA.n_answers))
    table = pd.DataFrame(votes, columns=SCHEMA.label_cols)
    table.insert(0, "file_loc", paths)
    table.insert(0, "id_str", [f"G{1000 - i}" for i in range(N_GALAXIES)])  # not sorted
    table["labelled"] = True
    catalogue = folder / "catalogue.parquet"
    table.to_parquet(catalogue, index=False)
    splits = folder / "splits.csv"
    pd.DataFrame(
        {"id_str": table["id_str"], "split": [SPLITS[PATTERN[i % 6]] for i in range(N_GALAXIES)]}
    ).to_csv(splits, index=False)
    files = {"catalogue": catalogue, "splits": splits}
    for name, greyscale in (("grey", True), ("colour", False)):
        files[name] = folder / f"{name}.h5"
        preprocess_catalogue(
            catalogue, files[name], image_size=8, crop_fraction=0.9, greyscale=greyscale
        )
    return files


def write(survey, split, out_dir, images="grey", **kwargs):
    kwargs.setdefault("examples_per_shard", 3)
    return write_split_shards(
        survey[images], survey["catalogue"], survey["splits"], split, out_dir, SCHEMA, **kwargs
    )


def expected_rows(survey, split):
    table = pd.read_parquet(survey["catalogue"])
    splits = pd.read_csv(survey["splits"], dtype=str)
    return table, np.flatnonzero(splits["split"].to_numpy() == split)


@pytest.mark.parametrize("images", ["grey", "colour"])
@pytest.mark.parametrize("split", SPLITS)
def test_round_trip_gives_the_split_in_catalogue_order(survey, tmp_path, split, images):
    manifest = write(survey, split, tmp_path / split, images=images)
    ids, votes, pixels = load_split(tmp_path / split / "manifest.json")
    table, rows = expected_rows(survey, split)
    assert ids.tolist() == table["id_str"].iloc[rows].tolist()
    np.testing.assert_array_equal(votes, table[SCHEMA.label_cols].to_numpy()[rows])
    assert votes.dtype == np.int64
    with h5py.File(survey[images], "r") as h5:
        np.testing.assert_array_equal(pixels, h5["images"][...][rows])
    channels = 1 if images == "grey" else 3
    assert pixels.shape == (len(rows), 8, 8, channels) and pixels.dtype == np.uint8
    assert manifest["image_shape"] == [8, 8, channels]


def test_manifest_counts_checksums_and_shard_sizes(survey, tmp_path):
    manifest = write(survey, "pool", tmp_path, examples_per_shard=4)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["split"] == "pool"
    assert manifest["count"] == 11
    assert manifest["label_cols"] == SCHEMA.label_cols
    assert manifest["examples_per_shard"] == 4
    assert [f["name"] for f in manifest["files"]] == [
        "shard_00000.tfrecord",
        "shard_00001.tfrecord",
        "shard_00002.tfrecord",
    ]
    assert [f["count"] for f in manifest["files"]] == [4, 4, 3]
    for entry in manifest["files"]:
        path = tmp_path / entry["name"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert sum(1 for _ in tf.data.TFRecordDataset(str(path))) == entry["count"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f["name"] for f in manifest["files"]] + ["manifest.json"]
    )
    assert read_manifest(tmp_path / "manifest.json") == manifest
    assert read_manifest(tmp_path) == manifest  # the folder works too


def test_corrupted_or_missing_shard_is_detected(survey, tmp_path):
    write(survey, "pool", tmp_path)
    shard = tmp_path / "shard_00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"shard_00001\.tfrecord is corrupt"):
        read_manifest(tmp_path / "manifest.json")
    with pytest.raises(ShardError, match="corrupt"):
        load_split(tmp_path / "manifest.json")
    read_manifest(tmp_path / "manifest.json", verify_checksums=False)  # presence-only check
    shard.unlink()
    with pytest.raises(ShardError, match=r"shard_00001\.tfrecord is missing"):
        read_manifest(tmp_path / "manifest.json", verify_checksums=False)


def test_missing_manifest_is_reported(tmp_path):
    with pytest.raises(ShardError, match="manifest missing"):
        read_manifest(tmp_path / "manifest.json")


def test_thread_count_does_not_change_the_bytes(survey, tmp_path):
    one = write(survey, "pool", tmp_path / "one", images="colour", examples_per_shard=2)
    two = write(survey, "pool", tmp_path / "two", images="colour", examples_per_shard=2, threads=2)
    assert one == two
    assert len(one["files"]) == 6
    for entry in one["files"]:
        a = (tmp_path / "one" / entry["name"]).read_bytes()
        assert a == (tmp_path / "two" / entry["name"]).read_bytes()


def test_all_splits_at_once_match_one_split_at_a_time(survey, tmp_path):
    together = write_all_shards(
        survey["grey"],
        survey["catalogue"],
        survey["splits"],
        {split: tmp_path / "together" / split for split in SPLITS},
        SCHEMA,
        examples_per_shard=2,
        threads=2,
    )
    assert list(together) == list(SPLITS)
    for split in SPLITS:
        alone = write(survey, split, tmp_path / "alone" / split, examples_per_shard=2)
        assert together[split] == alone
        assert alone["count"] == len(expected_rows(survey, split)[1]) > 0
        for entry in alone["files"]:
            shard = Path(split) / entry["name"]
            assert (tmp_path / "together" / shard).read_bytes() == (
                tmp_path / "alone" / shard
            ).read_bytes()


@pytest.mark.parametrize("threads", [1, 2])
def test_reading_in_blocks_of_any_size_writes_the_same_bytes(
    survey, tmp_path, monkeypatch, threads
):
    """Blocks of 3 catalogue rows against shards of 2 galaxies of a split: a shard gathers
    rows from several blocks and a block feeds several shards, with the same bytes as one block."""
    one_block = {
        split: write(survey, split, tmp_path / "one" / split, examples_per_shard=2)
        for split in SPLITS
    }
    monkeypatch.setattr("zooflow.shards._BLOCK_ROWS", 3)
    blocks = write_all_shards(
        survey["grey"],
        survey["catalogue"],
        survey["splits"],
        {split: tmp_path / "blocks" / split for split in SPLITS},
        SCHEMA,
        examples_per_shard=2,
        threads=threads,
    )
    assert blocks == one_block
    for split in SPLITS:
        for entry in blocks[split]["files"]:
            shard = Path(split) / entry["name"]
            assert (tmp_path / "blocks" / shard).read_bytes() == (
                tmp_path / "one" / shard
            ).read_bytes()


def test_a_splits_file_in_another_order_is_refused_naming_the_step(survey, tmp_path, monkeypatch):
    monkeypatch.setattr("zooflow.shards._BLOCK_ROWS", 4)
    splits = pd.read_csv(survey["splits"], dtype=str)
    splits.iloc[[6, 7]] = splits.iloc[[7, 6]].to_numpy()
    splits.to_csv(tmp_path / "splits.csv", index=False)
    catalogue_ids = pd.read_parquet(survey["catalogue"])["id_str"]
    with pytest.raises(
        ShardError, match=rf"row 6 is galaxy '{catalogue_ids[7]}'.*re-run the split"
    ):
        write_all_shards(
            survey["grey"],
            survey["catalogue"],
            tmp_path / "splits.csv",
            {"pool": tmp_path / "o"},
            SCHEMA,
            examples_per_shard=3,
        )


def test_empty_split_gives_an_empty_manifest(survey, tmp_path):
    splits = pd.read_csv(survey["splits"], dtype=str)
    splits["split"] = splits["split"].replace("val", "pool")
    no_val = tmp_path / "splits.csv"
    splits.to_csv(no_val, index=False)
    manifest = write_split_shards(
        survey["grey"],
        survey["catalogue"],
        no_val,
        "val",
        tmp_path / "val",
        SCHEMA,
        examples_per_shard=3,
    )
    assert manifest["count"] == 0 and manifest["files"] == []
    assert [p.name for p in (tmp_path / "val").iterdir()] == ["manifest.json"]
    ids, votes, images = load_split(tmp_path / "val" / "manifest.json")
    assert ids.shape == (0,)
    assert votes.shape == (0, SCHEMA.n_answers)
    assert images.shape == (0, 8, 8, 1)


def test_rewriting_removes_stale_shards(survey, tmp_path):
    write(survey, "pool", tmp_path, examples_per_shard=2)
    assert len(list(tmp_path.glob("shard_*.tfrecord"))) == 6
    manifest = write(survey, "pool", tmp_path, examples_per_shard=100)
    assert [p.name for p in tmp_path.glob("shard_*.tfrecord")] == ["shard_00000.tfrecord"]
    assert manifest["files"][0]["count"] == 11


def test_make_dataset_reads_several_manifests(survey, tmp_path):
    for split in ("test", "pool"):
        write(survey, split, tmp_path / split)
    manifests = [tmp_path / "test" / "manifest.json", tmp_path / "pool"]  # manifest or folder
    dataset = make_dataset(manifests, SCHEMA, batch_size=5, with_ids=True)
    images, votes, _ = dataset.element_spec
    assert tuple(images.shape[1:]) == (8, 8, 1) and tuple(votes.shape[1:]) == (SCHEMA.n_answers,)
    batches = list(dataset.as_numpy_iterator())
    got = [i.decode() for _, _, ids in batches for i in ids]
    table = pd.read_parquet(survey["catalogue"]).set_index("id_str")
    _, test_rows = expected_rows(survey, "test")
    _, pool_rows = expected_rows(survey, "pool")
    assert sorted(got) == sorted(table.index[np.concatenate([test_rows, pool_rows])])
    all_votes = np.concatenate([v for _, v, _ in batches])
    np.testing.assert_array_equal(all_votes, table.loc[got, SCHEMA.label_cols].to_numpy())
    # deterministic: the same order on a second pass
    again = [i.decode() for _, _, ids in dataset.as_numpy_iterator() for i in ids]
    assert again == got


def test_the_reader_rejects_shards_of_another_tree(survey, tmp_path):
    write(survey, "test", tmp_path)
    with pytest.raises(ShardError, match="not tree 'decals_dr5'"):
        make_dataset([tmp_path], load_schema("decals_dr5"), batch_size=2)
    with pytest.raises(ShardError, match=r"manifest.json: shards were written for columns"):
        shard_files([tmp_path / "manifest.json"], schema=load_schema("decals_dr5"))
    files, shape = shard_files([tmp_path], schema=SCHEMA)
    assert shape == (8, 8, 1) and sum(n for _, n in files) == 4


def test_parse_example_decodes_inside_dataset_map():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                "votes": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, 0, 7])),
                "id_str": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"abc"])),
            }
        )
    ).SerializeToString()
    dataset = tf.data.Dataset.from_tensors(example).map(lambda s: parse_example(s, 3, (4, 5, 3)))
    parsed = next(dataset.as_numpy_iterator())
    np.testing.assert_array_equal(parsed["image"], image)
    np.testing.assert_array_equal(parsed["votes"], [3, 0, 7])
    assert parsed["id_str"] == b"abc"
    # A manifest whose image_shape does not hold the stored bytes fails loudly.
    wrong_shape = tf.data.Dataset.from_tensors(example).map(
        lambda s: parse_example(s, 3, (4, 4, 3))
    )
    with pytest.raises(tf.errors.InvalidArgumentError):
        next(wrong_shape.as_numpy_iterator())


def test_an_image_is_stored_as_its_raw_bytes_and_comes_back_exactly(survey, tmp_path):
    manifest = write(survey, "pool", tmp_path, images="colour", examples_per_shard=50)
    assert manifest["image_encoding"] == "raw_uint8"
    record = next(iter(tf.data.TFRecordDataset(str(tmp_path / "shard_00000.tfrecord"))))
    example = tf.train.Example.FromString(record.numpy())
    stored = example.features.feature["image"].bytes_list.value[0]
    _, rows = expected_rows(survey, "pool")
    with h5py.File(survey["colour"], "r") as h5:
        first = h5["images"][rows[0]]
    assert stored == first.tobytes() and len(stored) == 8 * 8 * 3


def test_shards_of_an_earlier_png_format_are_refused_with_the_fix(survey, tmp_path):
    write(survey, "test", tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["image_encoding"]  # as zooflow wrote manifests before raw images
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"PNG \(an earlier zooflow\).*--forcerun shards"):
        read_manifest(tmp_path / "manifest.json")


def test_stale_splits_file_is_rejected(survey, tmp_path):
    splits = pd.read_csv(survey["splits"], dtype=str).drop(index=5)
    splits.to_csv(tmp_path / "splits.csv", index=False)
    with pytest.raises(ShardError, match="1 catalogue galaxies have no split"):
        write_split_shards(
            survey["grey"],
            survey["catalogue"],
            tmp_path / "splits.csv",
            "pool",
            tmp_path / "o",
            SCHEMA,
            examples_per_shard=3,
        )


def test_images_from_another_catalogue_are_rejected(survey, tmp_path):
    table = pd.read_parquet(survey["catalogue"]).iloc[::-1]
    table.to_parquet(tmp_path / "reordered.parquet", index=False)
    with pytest.raises(ShardError, match="re-run preprocessing"):
        write_split_shards(
            survey["grey"],
            tmp_path / "reordered.parquet",
            survey["splits"],
            "pool",
            tmp_path / "o",
            SCHEMA,
            examples_per_shard=3,
        )


def test_bad_vote_counts_are_rejected(survey, tmp_path):
    table = pd.read_parquet(survey["catalogue"])
    table.loc[6, SCHEMA.label_cols[2]] = -1
    table.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(ShardError, match=rf"row 6 .*{SCHEMA.label_cols[2]}"):
        write_split_shards(
            survey["grey"],
            tmp_path / "bad.parquet",
            survey["splits"],
            "pool",
            tmp_path / "o",
            SCHEMA,
            examples_per_shard=3,
        )


def test_unknown_split_is_rejected(survey, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        write(survey, "train", tmp_path)
