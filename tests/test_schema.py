"""The decision tree: shapes, parents and P(asked), as the papers define them."""

import numpy as np
import pytest

from zooflow.schema import SchemaError, load_schema, write_resolved_tree


@pytest.fixture(scope="module")
def dr5():
    return load_schema("decals_dr5")


@pytest.fixture(scope="module")
def gz2():
    return load_schema("gz2")


def test_decals_dr5_has_34_answers_in_10_questions(dr5):
    assert dr5.n_answers == 34
    assert dr5.n_questions == 10
    assert dr5.label_cols[:3] == [
        "smooth-or-featured_smooth",
        "smooth-or-featured_featured-or-disk",
        "smooth-or-featured_artifact",
    ]
    assert dr5.label_cols[-1] == "merging_merger"
    assert [len(q.answers) for q in dr5.questions] == [3, 2, 2, 3, 5, 3, 3, 3, 6, 4]


def test_gz2_has_30_answers_in_zoobot_order(gz2):
    assert gz2.n_answers == 30
    assert gz2.question_names == [
        "smooth-or-featured",
        "disk-edge-on",
        "has-spiral-arms",
        "bar",
        "bulge-size",
        "something-odd",
        "how-rounded",
        "bulge-shape",
        "spiral-winding",
        "spiral-arm-count",
    ]
    assert gz2.question("bulge-size").answers == ("dominant", "obvious", "just-noticeable", "no")


def test_question_slices_are_contiguous_and_cover_every_answer(dr5):
    covered = []
    for q in dr5.questions:
        covered.extend(range(q.indices.start, q.indices.stop))
        assert dr5.label_cols[q.indices] == [f"{q.name}_{a}" for a in q.answers]
    assert covered == list(range(dr5.n_answers))
    assert dr5.question_index_groups[0] == (0, 2)
    assert dr5.question_index_groups[-1] == (30, 33)


def test_parents_follow_the_tree(dr5):
    assert dr5.parent_column("smooth-or-featured") is None
    assert dr5.parent_column("merging") is None
    assert dr5.parent_column("disk-edge-on") == "smooth-or-featured_featured-or-disk"
    assert dr5.parent_column("bar") == "disk-edge-on_no"
    assert dr5.parent_column("spiral-arm-count") == "has-spiral-arms_yes"
    assert dr5.parent_column("edge-on-bulge") == "disk-edge-on_yes"


def test_p_asked_is_the_product_of_parent_fractions_along_the_chain(dr5):
    votes = np.zeros((1, dr5.n_answers))
    col = {c: i for i, c in enumerate(dr5.label_cols)}
    # 40 volunteers: 10 smooth, 30 featured; of those 30, 6 edge-on, 24 not; of 24, 18 spiral.
    for name, k in {
        "smooth-or-featured_smooth": 10,
        "smooth-or-featured_featured-or-disk": 30,
        "disk-edge-on_yes": 6,
        "disk-edge-on_no": 24,
        "has-spiral-arms_yes": 18,
        "has-spiral-arms_no": 6,
        "merging_none": 40,
    }.items():
        votes[0, col[name]] = k
    p = dr5.p_asked(dr5.vote_fractions(votes))[0]
    q = dr5.question_names.index
    assert p[q("smooth-or-featured")] == 1.0
    assert p[q("merging")] == 1.0
    assert p[q("disk-edge-on")] == pytest.approx(0.75)
    assert p[q("how-rounded")] == pytest.approx(0.25)
    assert p[q("bar")] == pytest.approx(0.75 * 0.8)
    assert p[q("spiral-winding")] == pytest.approx(0.75 * 0.8 * 0.75)
    # A question under an answer nobody gave is never asked.
    assert p[q("edge-on-bulge")] == pytest.approx(0.75 * 0.2)


def test_a_question_nobody_was_asked_has_no_fraction(dr5):
    votes = np.zeros((1, dr5.n_answers))
    votes[0, 0] = 5  # all smooth: disk-edge-on never asked
    fractions = dr5.vote_fractions(votes)
    assert np.isnan(fractions[0, dr5.question("disk-edge-on").indices]).all()
    assert fractions[0, 0] == 1.0
    assert dr5.p_asked(fractions)[0, dr5.question_names.index("bar")] == 0.0


def test_question_suffix_renames_columns_but_not_questions():
    suffixed = load_schema("decals_dr5", question_suffix="-dr5")
    assert suffixed.label_cols[0] == "smooth-or-featured-dr5_smooth"
    assert suffixed.total_cols[0] == "smooth-or-featured-dr5_total-votes"
    assert suffixed.parent_column("bar") == "disk-edge-on-dr5_no"


@pytest.mark.parametrize("tree", ["gz2", "decals_dr5"])
@pytest.mark.parametrize("suffix", ["", "-dr5", "{year}"])
def test_a_resolved_tree_is_the_same_schema_with_its_suffix_written_in(tmp_path, tree, suffix):
    resolved = tmp_path / "tree.yaml"
    expected = write_resolved_tree(tree, suffix, resolved)
    schema = load_schema(resolved)
    assert schema == expected == load_schema(tree, suffix)
    assert schema.question_suffix == suffix and schema.label_cols == expected.label_cols
    assert schema.external_columns == expected.external_columns
    # A suffix given when loading still names the columns.
    assert load_schema(resolved, "-dr8").label_cols[0] == "smooth-or-featured-dr8_smooth"


def test_a_resolved_users_tree_keeps_the_name_its_file_gave_it(tmp_path):
    tree = tmp_path / "bars.yaml"
    tree.write_text("questions:\n  - {name: disk, answers: ['yes', 'no']}\n")
    write_resolved_tree(tree, "-x", tmp_path / "tree.yaml")
    schema = load_schema(tmp_path / "tree.yaml")
    assert schema.name == "bars" and schema.label_cols == ["disk-x_yes", "disk-x_no"]


def test_gz2_ships_the_hart16_public_table_mapping(gz2):
    mapping = gz2.external_mapping("hart16")
    assert len(mapping) == 30
    assert sorted(mapping.values()) == sorted(gz2.label_cols)
    assert mapping["t01_smooth_or_features_a01_smooth_count"] == "smooth-or-featured_smooth"
    # GZ2 lists bulge prominence from 'no bulge' up; the gz2 tree from 'dominant' down.
    assert mapping["t05_bulge_prominence_a13_dominant_count"] == "bulge-size_dominant"
    assert mapping["t05_bulge_prominence_a10_no_bulge_count"] == "bulge-size_no"
    assert mapping["t09_bulge_shape_a27_no_bulge_count"] == "bulge-shape_no-bulge"


def test_a_users_own_tree_loads_from_a_path(tmp_path):
    tree = tmp_path / "bars.yaml"
    tree.write_text(
        "name: bars\nquestions:\n"
        "  - {name: disk, answers: ['yes', 'no']}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: disk_yes}\n"
    )
    schema = load_schema(tree)
    assert schema.name == "bars"
    assert schema.label_cols == ["disk_yes", "disk_no", "bar_yes", "bar_no"]
    assert schema.parent_index == [None, 0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("questions:\n  - {name: q, answers: [yes, no]}\n", "quote yes/no"),
        ("questions:\n  - {name: q, answers: ['a', 'b'], parent: nope_a}\n", "not an answer"),
        ("questions:\n  - {name: q, answers: ['a']}\n", "at least two answers"),
        ("nothing: here\n", "'questions' list"),
        ("questions:\n  - {name: q, answers: ['a', 'b']\n", r"broken.yaml, line 3: not valid YAML"),
        ("question_suffix: 5\nquestions:\n  - {name: q, answers: ['a', 'b']}\n", "not a string"),
    ],
)
def test_broken_trees_are_refused_with_the_reason(tmp_path, body, message):
    tree = tmp_path / "broken.yaml"
    tree.write_text(body)
    with pytest.raises(SchemaError, match=message):
        load_schema(tree)


def test_an_unknown_tree_name_is_refused():
    with pytest.raises(SchemaError, match="neither a built-in tree"):
        load_schema("gz3")
