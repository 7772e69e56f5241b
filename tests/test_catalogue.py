"""Catalogue ingest: every bad-input kind is rejected with its own reason, good rows pass unchanged."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zooflow.catalogue import (
    IngestError,
    ingest_catalogue,
    ingest_to_files,
    iter_ingest,
    write_ingest,
)
from zooflow.ids import read_csv_with_ids
from zooflow.schema import Schema, load_schema


@pytest.fixture(scope="module")
def decals() -> Schema:
    return load_schema("decals_dr5")


@pytest.fixture(scope="module")
def gz2() -> Schema:
    return load_schema("gz2")


def consistent_votes(
    schema: Schema,
    rng: np.random.Generator,
    root_total: int = 40,
    overrides: dict[str, int] | None = None,
) -> dict[str, int]:
    """Vote counts that obey the tree: each question's total is its parent answer's count.

    ``overrides`` fixes whole questions' answers; questions below them follow the fixed counts.
    """
    overrides = overrides or {}
    counts: dict[str, int] = {}
    for question, parent in zip(schema.questions, schema.parent_index, strict=True):
        cols = schema.label_cols[question.indices]
        if cols[0] in overrides:
            counts.update({c: overrides[c] for c in cols})
            continue
        total = root_total if parent is None else counts[schema.label_cols[parent]]
        split = rng.multinomial(total, rng.dirichlet(np.ones(len(cols))))
        counts.update(zip(cols, (int(v) for v in split), strict=True))
    return counts


def save_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with good, odd-but-usable and broken images."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for name in ("good_0", "good_1", "good_2", "shared"):
        save_png(folder / f"{name}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    save_png(folder / "sixteen_bit.png", rng.integers(0, 65536, (16, 16), dtype=np.uint16))
    save_png(folder / "rgba.png", rng.integers(0, 256, (16, 16, 4), dtype=np.uint8))
    save_png(folder / "wrong_size.png", rng.integers(0, 256, (13, 7, 3), dtype=np.uint8))
    (folder / "zero_bytes.png").write_bytes(b"")
    noise = save_png(folder / "noise.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = noise.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "text.png").write_text("not an image\n")
    return folder


def bad_catalogue(schema: Schema, images: Path) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """One good row per usable image kind, one row per bad-input kind.

    Returns the catalogue and, for each row that must be rejected, words its reason must contain.
    """
    rng = np.random.default_rng(7)
    rows: list[dict[str, object]] = []
    expected: dict[int, list[str]] = {}

    def add(id_str, file_loc, votes=None, reason_words=None):
        votes = consistent_votes(schema, rng) if votes is None else votes
        rows.append({"id_str": id_str, "file_loc": file_loc, "ra": 150.0 + len(rows), **votes})
        if reason_words:
            expected[len(rows) - 1] = reason_words

    add("good_0", "good_0.png")
    add("good_1", str(images / "good_1.png"))  # absolute paths are used as they are
    add("good_2", "good_2.png")
    add("sixteen_bit", "sixteen_bit.png")
    add("rgba", "rgba.png")
    add("wrong_size", "wrong_size.png")
    add("zero_bytes", "zero_bytes.png", reason_words=["empty", "0 bytes", "zero_bytes.png"])
    add("truncated", "truncated.png", reason_words=["does not decode", "truncated"])
    missing = str(images / "absent.png")
    add("missing", "absent.png", reason_words=[f"image file missing: {missing}"])
    add("text", "text.png", reason_words=["does not decode", "cannot identify", "text.png"])

    votes = consistent_votes(schema, rng)
    votes["smooth-or-featured_smooth"] = -3
    add("negative", "shared.png", votes, ["negative vote count -3 in smooth-or-featured_smooth"])

    votes = consistent_votes(schema, rng)
    votes["bar_no"] = np.nan
    add("one_nan", "shared.png", votes, ["vote count is NaN/empty in column bar_no"])

    votes = consistent_votes(schema, rng)
    votes["bar_no"] = 2.5
    add("fractional", "shared.png", votes, ["non-integer vote count 2.5 in bar_no"])

    add("good_0", "shared.png", reason_words=["duplicate id_str 'good_0' (first seen at row 0)"])

    over = {
        "smooth-or-featured_smooth": 10,
        "smooth-or-featured_featured-or-disk": 5,
        "smooth-or-featured_artifact": 1,
        "disk-edge-on_yes": 8,
        "disk-edge-on_no": 1,
    }
    add(
        "child_exceeds",
        "shared.png",
        consistent_votes(schema, rng, overrides=over),
        ["disk-edge-on total 9 exceeds parent smooth-or-featured_featured-or-disk count 5"],
    )
    add(np.nan, "shared.png", reason_words=["missing id in column id_str"])

    # Kept: an unlabelled galaxy, and a one-vote inconsistency inside the default tolerance.
    add("unlabelled", "shared.png", dict.fromkeys(schema.label_cols, np.nan))
    votes = consistent_votes(schema, rng)
    votes["spiral-arm-count_cant-tell"] += 1
    add("within_tolerance", "shared.png", votes)
    return pd.DataFrame(rows), expected


@pytest.fixture(scope="module")
def bad_csv(decals: Schema, images: Path, tmp_path_factory: pytest.TempPathFactory):
    frame, expected = bad_catalogue(decals, images)
    path = tmp_path_factory.mktemp("catalogue") / "catalogue.csv"
    frame.to_csv(path, index=False)
    return path, frame, expected


@pytest.fixture(scope="module")
def bad_result(bad_csv, images: Path, decals: Schema):
    path, _, _ = bad_csv
    return ingest_catalogue(path, images, decals)


def test_each_bad_row_rejected_with_its_own_reason(bad_csv, bad_result):
    _, frame, expected = bad_csv
    rejected = bad_result.rejected.set_index("row")
    assert sorted(rejected.index) == sorted(expected)
    for row, words in expected.items():
        reason = rejected.loc[row, "reason"]
        assert ";" not in reason, f"row {row} has more than one problem: {reason}"
        for word in words:
            assert word in reason, f"row {row}: {word!r} not in {reason!r}"
    assert list(bad_result.rejected.columns) == ["id_str", "file", "reason", "row"]
    assert rejected.loc[13, "id_str"] == "good_0"
    assert rejected.loc[15, "id_str"] == ""  # missing id


def test_rows_in_equal_kept_plus_rejected(bad_csv, bad_result):
    _, frame, expected = bad_csv
    assert bad_result.n_input == len(frame)
    assert len(bad_result.clean) + len(bad_result.rejected) == len(frame)
    assert len(bad_result.clean) == len(frame) - len(expected)
    assert bad_result.rejected_fraction == pytest.approx(len(expected) / len(frame))


def test_good_rows_pass_unchanged(bad_csv, bad_result, images: Path, decals: Schema):
    _, frame, expected = bad_csv
    clean = bad_result.clean
    kept_rows = [r for r in range(len(frame)) if r not in expected]
    assert clean["row"].tolist() == kept_rows  # input order
    source = frame.iloc[kept_rows].reset_index(drop=True)
    assert clean["id_str"].tolist() == source["id_str"].tolist()
    assert clean["ra"].tolist() == source["ra"].tolist()
    labelled = clean["labelled"].to_numpy()
    np.testing.assert_array_equal(
        clean.loc[labelled, decals.label_cols].to_numpy(),
        source.loc[labelled, decals.label_cols].to_numpy(),
    )
    expected_paths = [str((images / Path(p).name).resolve()) for p in source["file_loc"]]
    assert [str(Path(p).resolve()) for p in clean["file_loc"]] == expected_paths
    assert all(Path(p).is_absolute() for p in clean["file_loc"])


def test_odd_but_usable_images_kept(bad_result):
    assert {"sixteen_bit", "rgba", "wrong_size"} <= set(bad_result.clean["id_str"])


def test_clean_columns_and_types(bad_result, decals: Schema):
    clean = bad_result.clean
    for col in decals.label_cols + decals.total_cols + ["row"]:
        assert clean[col].dtype == np.int64, col
    assert clean["labelled"].dtype == bool
    votes = clean[decals.label_cols].to_numpy()
    np.testing.assert_array_equal(
        clean[decals.total_cols].to_numpy(), decals.question_totals(votes).astype(np.int64)
    )
    assert {"file_loc", "id_str", "ra"} <= set(clean.columns)


def test_unlabelled_row_kept_with_zero_counts(bad_result, decals: Schema):
    clean = bad_result.clean.set_index("id_str")
    assert not clean.loc["unlabelled", "labelled"]
    assert clean.loc["unlabelled", decals.label_cols].sum() == 0
    assert clean.loc["unlabelled", decals.total_cols].sum() == 0
    others = clean.drop(index="unlabelled")
    assert others["labelled"].all()


def test_all_zero_votes_are_unlabelled(tmp_path: Path, images: Path, decals: Schema):
    frame = pd.DataFrame(
        [
            {"id_str": "zeros", "file_loc": "shared.png", **dict.fromkeys(decals.label_cols, 0)},
            {"id_str": "voted", "file_loc": "shared.png", **consistent_votes(decals, fixed_rng())},
        ]
    )
    frame.to_csv(tmp_path / "cat.csv", index=False)
    clean = ingest_catalogue(tmp_path / "cat.csv", images, decals).clean
    assert clean["labelled"].tolist() == [False, True]


def fixed_rng() -> np.random.Generator:
    return np.random.default_rng(3)


def tolerance_catalogue(path: Path, schema: Schema, extra_votes: list[int]) -> None:
    """how-rounded totals of 100 + extra against a parent smooth count of 100."""
    rows = []
    for i, extra in enumerate(extra_votes):
        over = {
            "smooth-or-featured_smooth": 100,
            "smooth-or-featured_featured-or-disk": 20,
            "smooth-or-featured_artifact": 0,
            "how-rounded_round": 60,
            "how-rounded_in-between": 30,
            "how-rounded_cigar-shaped": 10,
        }
        votes = consistent_votes(schema, fixed_rng(), overrides=over)
        votes["how-rounded_round"] += extra
        rows.append({"id_str": f"g{i}", "file_loc": "shared.png", **votes})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_tree_tolerance_relative_and_absolute(tmp_path: Path, images: Path, decals: Schema):
    path = tmp_path / "cat.csv"
    tolerance_catalogue(path, decals, [0, 10, 11, -10, -11])
    result = ingest_catalogue(path, images, decals)  # allowed = max(1, 0.1 * 100) = 10
    assert result.clean["id_str"].tolist() == ["g0", "g1", "g3"]
    reasons = result.rejected.set_index("id_str")["reason"]
    assert (
        "how-rounded total 111 exceeds parent smooth-or-featured_smooth count 100" in reasons["g2"]
    )
    assert "tolerance 10" in reasons["g2"]
    assert (
        "how-rounded total 89 is below parent smooth-or-featured_smooth count 100"
        in (reasons["g4"])
    )

    strict = ingest_catalogue(path, images, decals, tree_tolerance=0.0, tree_tolerance_votes=0)
    assert strict.clean["id_str"].tolist() == ["g0"]
    loose = ingest_catalogue(path, images, decals, tree_tolerance=0.0, tree_tolerance_votes=11)
    assert loose.clean["id_str"].tolist() == ["g0", "g1", "g2", "g3", "g4"]


def test_one_vote_inconsistency_kept_by_default_rejected_when_strict(
    bad_csv, bad_result, images: Path, decals: Schema
):
    path, _, _ = bad_csv
    assert "within_tolerance" in set(bad_result.clean["id_str"])
    strict = ingest_catalogue(path, images, decals, tree_tolerance=0, tree_tolerance_votes=0)
    reason = strict.rejected.set_index("id_str").loc["within_tolerance", "reason"]
    assert "spiral-arm-count total" in reason and "exceeds parent has-spiral-arms_yes" in reason


def test_votes_below_a_zero_vote_parent_are_inconsistent(
    tmp_path: Path, images: Path, decals: Schema
):
    over = {
        "smooth-or-featured_smooth": 0,
        "smooth-or-featured_featured-or-disk": 10,
        "smooth-or-featured_artifact": 0,
    }
    rows = []
    for i, stray in enumerate([1, 2]):
        votes = consistent_votes(decals, fixed_rng(), overrides=over)
        votes["how-rounded_cigar-shaped"] = stray
        rows.append({"id_str": f"g{i}", "file_loc": "shared.png", **votes})
    pd.DataFrame(rows).to_csv(tmp_path / "cat.csv", index=False)
    result = ingest_catalogue(tmp_path / "cat.csv", images, decals)
    assert result.clean["id_str"].tolist() == ["g0"]  # one stray vote is within the 1-vote floor
    assert (
        "how-rounded total 2 exceeds parent smooth-or-featured_smooth count 0"
        in (result.rejected["reason"].iloc[0])
    )


def test_non_numeric_and_infinite_counts(tmp_path: Path, images: Path, decals: Schema):
    rows = []
    for i, bad in enumerate(["abc", "inf"]):
        votes: dict[str, object] = dict(consistent_votes(decals, fixed_rng()))
        votes["merging_none"] = bad
        votes["merging_merger"] = bad
        rows.append({"id_str": f"g{i}", "file_loc": "shared.png", **votes})
    pd.DataFrame(rows).to_csv(tmp_path / "cat.csv", index=False)
    reasons = ingest_catalogue(tmp_path / "cat.csv", images, decals).rejected["reason"].tolist()
    assert reasons[0] == "non-numeric vote count 'abc' in merging_none (also merging_merger)"
    assert reasons[1] == "non-finite vote count inf in merging_none (also merging_merger)"


def test_input_totals_are_recomputed(tmp_path: Path, images: Path, decals: Schema):
    votes = consistent_votes(decals, fixed_rng())
    wrong_totals = dict.fromkeys(decals.total_cols, 999)
    frame = pd.DataFrame([{"id_str": "a", "file_loc": "shared.png", **votes, **wrong_totals}])
    frame.to_csv(tmp_path / "cat.csv", index=False)
    clean = ingest_catalogue(tmp_path / "cat.csv", images, decals).clean
    expected = sum(votes[c] for c in decals.label_cols[decals.questions[0].indices])
    assert clean.loc[0, "smooth-or-featured_total-votes"] == expected != 999


def test_parquet_input_matches_csv(bad_csv, bad_result, tmp_path: Path, images, decals):
    _, frame, _ = bad_csv
    frame.to_parquet(tmp_path / "catalogue.parquet", index=False)
    from_parquet = ingest_catalogue(tmp_path / "catalogue.parquet", images, decals)
    pd.testing.assert_frame_equal(from_parquet.clean, bad_result.clean)
    pd.testing.assert_frame_equal(from_parquet.rejected, bad_result.rejected)


def test_threads_give_the_same_result(bad_csv, bad_result, images: Path, decals: Schema):
    path, _, _ = bad_csv
    threaded = ingest_catalogue(path, images, decals, threads=2)
    pd.testing.assert_frame_equal(threaded.clean, bad_result.clean)
    pd.testing.assert_frame_equal(threaded.rejected, bad_result.rejected)


def test_too_many_rejected_raises_after_writing(bad_result, tmp_path: Path, decals: Schema):
    clean_path = tmp_path / "out" / "clean.parquet"
    rejected_path = tmp_path / "out" / "rejected.csv"
    with pytest.raises(IngestError) as raised:
        write_ingest(bad_result, clean_path, rejected_path, max_rejected_fraction=0.2)
    message = str(raised.value)
    n_rejected = len(bad_result.rejected)
    assert f"{n_rejected} of {bad_result.n_input} catalogue rows rejected" in message
    assert f"({bad_result.rejected_fraction:.1%})" in message
    assert str(rejected_path) in message
    assert bad_result.rejected["reason"].iloc[0] in message
    written = pd.read_csv(rejected_path, keep_default_na=False)
    assert len(written) == n_rejected
    assert written["reason"].tolist() == bad_result.rejected["reason"].tolist()
    assert clean_path.exists()


def test_write_ingest_round_trip_under_threshold(bad_result, tmp_path: Path, decals: Schema):
    clean_path, rejected_path = tmp_path / "clean.parquet", tmp_path / "rejected.csv"
    write_ingest(bad_result, clean_path, rejected_path, max_rejected_fraction=0.9)
    clean = pd.read_parquet(clean_path)
    assert clean["id_str"].tolist() == bad_result.clean["id_str"].tolist()
    assert (clean[decals.label_cols].dtypes == np.int64).all()
    assert clean["labelled"].dtype == bool
    assert list(tmp_path.iterdir()) != [] and not list(tmp_path.glob(".partial*"))


def hart16_table(gz2: Schema, images: Path) -> tuple[pd.DataFrame, list[dict[str, int]]]:
    """Three galaxies under the public GZ2 table's column names, ids as dr7objid."""
    to_hart = {dst: src for src, dst in gz2.external_mapping("hart16").items()}
    rng = np.random.default_rng(11)
    ids = [587722981741363294, 587722981741363295, 588848898827747418]
    votes = [consistent_votes(gz2, rng) for _ in ids]
    rows = [
        {"dr7objid": ident, "ra": 10.5 + i, "t08_odd_feature_a19_ring_count": i}
        | {to_hart[col]: count for col, count in v.items()}
        for i, (ident, v) in enumerate(zip(ids, votes, strict=True))
    ]
    for ident in ids:
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            images / f"{ident}.jpg"
        )
    return pd.DataFrame(rows), votes


def test_hart16_mapping_reads_public_gz2_columns(tmp_path: Path, gz2: Schema):
    images = tmp_path / "images"
    images.mkdir()
    table, votes = hart16_table(gz2, images)
    table.to_csv(tmp_path / "gz2_hart16.csv", index=False)
    result = ingest_catalogue(
        tmp_path / "gz2_hart16.csv",
        images,
        gz2,
        column_mapping="hart16",
        id_column="dr7objid",
        file_template="{dr7objid}.jpg",
    )
    clean = result.clean
    assert result.rejected.empty
    # 18-digit ids survive exactly (a float would round them).
    assert clean["id_str"].tolist() == [str(i) for i in table["dr7objid"]]
    assert [Path(p).name for p in clean["file_loc"]] == [f"{i}.jpg" for i in table["dr7objid"]]
    np.testing.assert_array_equal(
        clean[gz2.label_cols].to_numpy(), [[v[c] for c in gz2.label_cols] for v in votes]
    )
    # Spot-check the mapping against the public names, independent of the YAML.
    for public, ours in [
        ("t01_smooth_or_features_a01_smooth_count", "smooth-or-featured_smooth"),
        ("t05_bulge_prominence_a10_no_bulge_count", "bulge-size_no"),
        ("t11_arms_number_a37_cant_tell_count", "spiral-arm-count_cant-tell"),
    ]:
        assert clean[ours].tolist() == table[public].tolist()
    # Unmapped columns are carried through; mapped ones are renamed, not duplicated.
    assert clean["t08_odd_feature_a19_ring_count"].tolist() == [0, 1, 2]
    assert "t01_smooth_or_features_a01_smooth_count" not in clean.columns
    assert "dr7objid" not in clean.columns


def test_rejection_reasons_name_the_catalogues_own_columns(tmp_path: Path, gz2: Schema):
    images = tmp_path / "images"
    images.mkdir()
    table, _ = hart16_table(gz2, images)
    table.loc[0, "t03_bar_a06_bar_count"] = -2
    table.loc[1, "t02_edgeon_a04_yes_count"] += 9
    table.to_csv(tmp_path / "gz2.csv", index=False)
    result = ingest_catalogue(
        tmp_path / "gz2.csv",
        images,
        gz2,
        column_mapping="hart16",
        id_column="dr7objid",
        file_template="{dr7objid}.jpg",
        tree_tolerance=0,
        tree_tolerance_votes=0,
    )
    reasons = result.rejected.set_index("row")["reason"]
    assert "negative vote count -2 in t03_bar_a06_bar_count" in reasons[0]
    assert "bar_yes" not in reasons[0]
    assert (
        "disk-edge-on total" in reasons[1]
        and "(t02_edgeon_a04_yes_count + t02_edgeon_a05_no_count) exceeds parent "
        "t01_smooth_or_features_a02_features_or_disk_count"
        in reasons[1]
    )
    assert result.rejected.set_index("row")["id_str"][0] == str(table["dr7objid"][0])


def test_ids_are_kept_exactly_as_written(tmp_path: Path, images: Path, decals: Schema):
    rng = fixed_rng()
    ids = ["NA", "nan", "None", "000123", "587722981741363294", "null", " padded ", "  "]
    frame = pd.DataFrame(
        [{"id_str": i, "file_loc": "shared.png", **consistent_votes(decals, rng)} for i in ids]
    )
    frame.to_csv(tmp_path / "cat.csv", index=False)
    result = ingest_catalogue(tmp_path / "cat.csv", images, decals)
    # Words that pandas reads as missing are ids like any other; leading zeros and all 19
    # digits survive; surrounding spaces are refused rather than silently stripped.
    assert result.clean["id_str"].tolist() == ids[:6]
    rejected = result.rejected.set_index("row")
    assert rejected.loc[6, "id_str"] == " padded "
    assert "has spaces around it" in rejected.loc[6, "reason"]
    assert "missing id in column id_str" in rejected.loc[7, "reason"]

    # The same strings come back from every CSV the workflow writes and reads.
    result.clean[["id_str"]].to_csv(tmp_path / "labelled.csv", index=False)
    assert read_csv_with_ids(tmp_path / "labelled.csv")["id_str"].tolist() == ids[:6]


def test_parquet_ids_int64_exact_and_float_refused(tmp_path: Path, images: Path, decals: Schema):
    rng = fixed_rng()
    big = [587722981741363294, 588848898827747418, 587722981741363295]
    votes = pd.DataFrame([consistent_votes(decals, rng) for _ in big])
    frame = pd.concat(
        [
            pd.DataFrame({"dr7objid": np.array(big, dtype=np.int64), "file_loc": "shared.png"}),
            votes,
        ],
        axis=1,
    )
    frame.to_parquet(tmp_path / "int.parquet")
    result = ingest_catalogue(tmp_path / "int.parquet", images, decals, id_column="dr7objid")
    assert result.clean["id_str"].tolist() == [str(i) for i in big]

    frame["dr7objid"] = frame["dr7objid"].astype(np.float64)  # rounds every one of them
    frame.to_parquet(tmp_path / "float.parquet")
    with pytest.raises(IngestError, match="'dr7objid' holds floating-point numbers") as raised:
        ingest_catalogue(tmp_path / "float.parquet", images, decals, id_column="dr7objid")
    assert "float.parquet" in str(raised.value) and "as text or as 64-bit integers" in str(
        raised.value
    )


def test_hart16_table_without_mapping_lists_missing_columns_and_hints(tmp_path: Path, gz2: Schema):
    images = tmp_path / "images"
    images.mkdir()
    table, _ = hart16_table(gz2, images)
    table.to_csv(tmp_path / "gz2.csv", index=False)
    with pytest.raises(IngestError, match="column_mapping='hart16'") as raised:
        ingest_catalogue(tmp_path / "gz2.csv", images, gz2, id_column="dr7objid")
    assert "lacks 30 required column(s)" in str(raised.value)
    assert "smooth-or-featured_smooth" in str(raised.value)


def test_missing_columns_are_listed(tmp_path: Path, images: Path, decals: Schema):
    votes = consistent_votes(decals, fixed_rng())
    del votes["bar_weak"], votes["merging_merger"]
    pd.DataFrame([{"id_str": "a", "file_loc": "shared.png", **votes}]).to_csv(
        tmp_path / "cat.csv", index=False
    )
    with pytest.raises(
        IngestError, match=r"lacks 2 required column\(s\): bar_weak, merging_merger"
    ):
        ingest_catalogue(tmp_path / "cat.csv", images, decals)


@pytest.mark.parametrize(("catalogue_suffix", "configured"), [("-dr5", ""), ("", "-dr8")])
def test_a_question_suffix_matching_no_column_says_which_would(
    tmp_path: Path, images: Path, catalogue_suffix: str, configured: str
):
    written = load_schema("decals_dr5", catalogue_suffix)
    votes = consistent_votes(written, fixed_rng())
    pd.DataFrame([{"id_str": "a", "file_loc": "shared.png", **votes}]).to_csv(
        tmp_path / "cat.csv", index=False
    )
    expected = f"smooth-or-featured{configured}_smooth"
    found = f"smooth-or-featured{catalogue_suffix}_smooth"
    with pytest.raises(IngestError) as raised:
        ingest_catalogue(tmp_path / "cat.csv", images, load_schema("decals_dr5", configured))
    assert str(raised.value) == (
        f"catalogue {tmp_path / 'cat.csv'} has none of the 34 vote columns of tree 'decals_dr5': "
        f"no column matches schema.question_suffix {configured!r} (which names the first "
        f"{expected!r}), but the catalogue has {found!r}: set schema.question_suffix to "
        f"{catalogue_suffix!r}"
    )


def test_dict_mapping_and_file_template(tmp_path: Path, images: Path, decals: Schema):
    votes = consistent_votes(decals, fixed_rng())
    renamed = {f"v{j}": votes[c] for j, c in enumerate(decals.label_cols)}
    mapping = {f"v{j}": c for j, c in enumerate(decals.label_cols)}
    pd.DataFrame([{"objid": "good_2", **renamed}]).to_csv(tmp_path / "cat.csv", index=False)
    clean = ingest_catalogue(
        tmp_path / "cat.csv",
        images,
        decals,
        column_mapping=mapping,
        id_column="objid",
        file_template="{id_str}.png",
    ).clean
    assert clean["id_str"].tolist() == ["good_2"]
    assert clean["file_loc"].tolist() == [str((images / "good_2.png").absolute())]
    assert [clean.loc[0, c] for c in decals.label_cols] == [votes[c] for c in decals.label_cols]


def test_images_inside_the_working_directory_are_found_after_the_run_is_moved(
    tmp_path: Path, images: Path, decals: Schema, monkeypatch
):
    """Images inside the run's folder are stored relative to it, so a run moved with its results
    preprocesses its own images; images outside it (a survey's shared folder) stay absolute."""
    from zooflow.preprocess import preprocess_catalogue

    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    for name in ("good_0", "good_1"):
        (run / "images" / f"{name}.png").write_bytes((images / f"{name}.png").read_bytes())
    rows = [
        {"id_str": "inside_0", "file_loc": "good_0.png"},
        {"id_str": "inside_1", "file_loc": "good_1.png"},
        {"id_str": "outside", "file_loc": str(images / "good_2.png")},
    ]
    votes = consistent_votes(decals, fixed_rng())
    pd.DataFrame([{**row, **votes} for row in rows]).to_csv(run / "cat.csv", index=False)
    monkeypatch.chdir(run)
    write_ingest(
        ingest_catalogue("cat.csv", "images", decals), "clean.parquet", "rejected.csv", 0.0
    )
    stored = pd.read_parquet("clean.parquet")["file_loc"].tolist()
    assert stored == ["images/good_0.png", "images/good_1.png", str(images / "good_2.png")]

    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    run.rename(moved)  # the old folder is gone
    monkeypatch.chdir(moved)
    preprocess_catalogue(
        "clean.parquet", "images.h5", image_size=8, crop_fraction=1.0, greyscale=False
    )
    with h5py.File("images.h5") as prepared:
        assert prepared["images"].shape == (3, 8, 8, 3)
        assert prepared["images"][:2].std() > 0  # the moved images, read and prepared


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"file_column": "path"}, "no image column 'path' and no file_template"),
        ({"file_column": "path", "file_template": "{objname}.png"}, r"\['objname'\]"),
        ({"column_mapping": {"x": "not-a-column"}}, "does not have"),
        ({"column_mapping": "sdss"}, "ships no column mapping 'sdss'"),
    ],
)
def test_configuration_errors(tmp_path: Path, images: Path, decals: Schema, kwargs, match):
    votes = consistent_votes(decals, fixed_rng())
    pd.DataFrame([{"id_str": "a", "file_loc": "shared.png", **votes}]).to_csv(
        tmp_path / "cat.csv", index=False
    )
    with pytest.raises(IngestError, match=match):
        ingest_catalogue(tmp_path / "cat.csv", images, decals, **kwargs)


def test_unreadable_catalogue_errors(tmp_path: Path, images: Path, decals: Schema):
    with pytest.raises(IngestError, match="does not exist"):
        ingest_catalogue(tmp_path / "none.csv", images, decals)
    (tmp_path / "cat.xlsx").write_text("x")
    with pytest.raises(IngestError, match="unknown format"):
        ingest_catalogue(tmp_path / "cat.xlsx", images, decals)
    pd.DataFrame(columns=["id_str", "file_loc", *decals.label_cols]).to_csv(
        tmp_path / "empty.csv", index=False
    )
    with pytest.raises(IngestError, match="has no rows"):
        ingest_catalogue(tmp_path / "empty.csv", images, decals)


# --- catalogues read in blocks ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_blocks_of_rows_give_exactly_the_one_pass_result(
    bad_csv, bad_result, tmp_path: Path, images: Path, decals: Schema, suffix
):
    """Blocks of 3 rows: duplicates found across blocks (good_0 repeats 13 rows later), row numbers
    the catalogue's, every kept and rejected row as one pass over the whole table gives."""
    path, frame, _ = bad_csv
    if suffix == ".parquet":
        path = tmp_path / "catalogue.parquet"
        frame.to_parquet(path, index=False)
    blocks = list(iter_ingest(path, images, decals, chunk_rows=3))
    assert [b.n_input for b in blocks] == [3] * (len(frame) // 3) + [len(frame) % 3] * (
        len(frame) % 3 > 0
    )
    joined = ingest_catalogue(path, images, decals, chunk_rows=3)
    pd.testing.assert_frame_equal(joined.clean, bad_result.clean)
    pd.testing.assert_frame_equal(joined.rejected, bad_result.rejected)


def test_ingest_to_files_in_blocks_writes_what_one_pass_writes(
    bad_csv, bad_result, tmp_path: Path, images: Path, decals: Schema
):
    path, _, _ = bad_csv
    write_ingest(bad_result, tmp_path / "one.parquet", tmp_path / "one.csv", 0.9)
    ingest_to_files(
        path,
        images,
        decals,
        tmp_path / "blocks.parquet",
        tmp_path / "blocks.csv",
        0.9,
        chunk_rows=4,
    )
    assert (tmp_path / "blocks.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "blocks.parquet"), pd.read_parquet(tmp_path / "one.parquet")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocks.csv",
        "blocks.parquet",
        "one.csv",
        "one.parquet",
    ]  # no parts or temporaries left behind
    with pytest.raises(IngestError, match=r"rows rejected .* max_rejected_fraction=20.0%"):
        ingest_to_files(path, images, decals, tmp_path / "c.parquet", tmp_path / "r.csv", 0.2)


def ingest_in_blocks_of_two(
    tmp_path: Path, images: Path, decals: Schema, max_rejected_fraction: float = 0.0, **options
) -> None:
    """tmp_path/cat.csv into c.parquet and r.csv, two rows at a time (by default no row may be
    rejected); ``options`` are iter_ingest's."""
    ingest_to_files(
        tmp_path / "cat.csv",
        images,
        decals,
        tmp_path / "c.parquet",
        tmp_path / "r.csv",
        max_rejected_fraction,
        chunk_rows=2,
        **options,
    )


def test_a_column_typed_differently_in_two_blocks_takes_the_type_holding_both(
    tmp_path: Path, images: Path, decals: Schema
):
    """CSV blocks are typed one by one: 'mag' is int64 in the first block and float64 (an empty
    cell) in the second, 'note' int64 then text; the joined file reads as the whole table does."""
    votes = consistent_votes(decals, fixed_rng())
    rows = [
        {"id_str": f"g{i}", "file_loc": "shared.png", "mag": mag, "note": note, **votes}
        for i, (mag, note) in enumerate([(1, 7), (2, 8), (None, "x"), (4, None)])
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "cat.csv", index=False)
    ingest_in_blocks_of_two(tmp_path, images, decals)
    whole = pd.read_csv(tmp_path / "cat.csv")
    written = pd.read_parquet(tmp_path / "c.parquet")
    assert written["mag"].dtype == np.float64
    np.testing.assert_array_equal(written["mag"], whole["mag"])
    assert written["note"].tolist()[:3] == ["7", "8", "x"] and pd.isna(written["note"].iloc[3])
    assert written["row"].tolist() == [0, 1, 2, 3]


def test_a_catalogue_broken_after_its_first_block_leaves_no_partial_output(
    tmp_path: Path, images: Path, decals: Schema
):
    votes = consistent_votes(decals, fixed_rng())
    rows = [{"id_str": f"g{i}", "file_loc": "shared.png", **votes} for i in range(5)]
    text = pd.DataFrame(rows).to_csv(index=False)
    (tmp_path / "cat.csv").write_text(text + "g5,shared.png,1,2,3,extra,cells" + ",9" * 60 + "\n")
    with pytest.raises(IngestError, match="cannot be read"):
        ingest_in_blocks_of_two(tmp_path, images, decals)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.csv"]


def test_min_votes_leaves_out_labelled_galaxies_too_few_answered(
    tmp_path: Path, images: Path, decals: Schema, caplog
):
    """A bar sample as W+20 drew theirs: labelled rows with fewer than 11 bar votes are neither kept
    nor rejected but counted; an unlabelled row is kept (no votes to select on), a bad row is
    still rejected for its own reason, and blocks of rows give the one-pass result."""
    rng = np.random.default_rng(11)
    rows = [
        {"id_str": f"g{i}", "file_loc": "shared.png", **consistent_votes(decals, rng)}
        for i in range(40)
    ]
    rows.append({"id_str": "unlabelled", "file_loc": "shared.png"})
    rows[-1].update(dict.fromkeys(decals.label_cols, np.nan))
    bad = consistent_votes(decals, rng)
    bad["smooth-or-featured_smooth"] = -1
    rows.append({"id_str": "negative", "file_loc": "shared.png", **bad})
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "cat.csv", index=False)
    bar_votes = frame[decals.label_cols[decals.question("bar").indices]].sum(axis=1)
    wanted = [f"g{i}" for i in range(40) if bar_votes[i] >= 11] + ["unlabelled"]
    assert 5 < len(wanted) - 1 < 35  # the threshold cuts this catalogue, not all or nothing

    result = ingest_catalogue(tmp_path / "cat.csv", images, decals, min_votes={"bar": 11})
    assert result.clean["id_str"].tolist() == wanted
    assert result.rejected["id_str"].tolist() == ["negative"]
    assert result.n_deselected == 40 - (len(wanted) - 1)
    assert (result.clean.loc[result.clean["labelled"], "bar_total-votes"] >= 11).all()

    with caplog.at_level("INFO", logger="zooflow.catalogue"):
        ingest_in_blocks_of_two(tmp_path, images, decals, 0.05, min_votes={"bar": 11})
    assert pd.read_parquet(tmp_path / "c.parquet")["id_str"].tolist() == wanted
    assert f"{result.n_deselected} good rows left out by the sample selection" in caplog.text
    assert f"42 rows, {len(wanted)} kept (1 unlabelled), 1 rejected" in caplog.text

    # No selection keeps every good row; a minimum of 0 selects nothing away.
    unselected = ingest_catalogue(tmp_path / "cat.csv", images, decals, min_votes={"bar": 0})
    assert len(unselected.clean) == 41 and unselected.n_deselected == 0


@pytest.mark.parametrize(
    ("min_votes", "match"),
    [
        ({"bars": 11}, r"min_votes names question 'bars'.*questions: smooth-or-featured"),
        ({"bar": -1}, r"min_votes\['bar'\] must be a non-negative integer, got -1"),
        ({"bar": 2.5}, r"must be a non-negative integer, got 2.5"),
        ({"bar": True}, r"must be a non-negative integer, got True"),
    ],
)
def test_min_votes_refuses_unknown_questions_and_bad_counts(
    tmp_path: Path, images: Path, decals: Schema, min_votes, match
):
    pd.DataFrame([{"id_str": "g", "file_loc": "shared.png"}]).to_csv(tmp_path / "c.csv")
    with pytest.raises(ValueError, match=match):
        ingest_catalogue(tmp_path / "c.csv", images, decals, min_votes=min_votes)
