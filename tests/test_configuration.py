"""A configuration mistake stops the run naming the key or file, the line, and the fix."""

import pytest
import yaml

from conftest import REPO
from zooflow.configuration import ConfigError, check_settings, readable_yaml


def _settings(**overrides):
    config = {
        "schema": {"tree": "decals_dr5", "question_suffix": ""},
        "data": {"source": "mock", "catalogue": "", "images": ""},
    }
    for section, values in overrides.items():
        config[section].update(values)
    return config


def test_a_yaml_mistake_names_its_file_line_and_column(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  epochs: 3\n   patience: 2\n")
    with pytest.raises(ConfigError, match=rf"^{config}, line 3, column 12: not valid YAML"):
        readable_yaml(config)
    config.write_text("train:\n  epochs: 3\n")
    assert readable_yaml(config) == str(config)


def test_an_unknown_tree_names_the_key_and_the_built_in_trees():
    with pytest.raises(ConfigError) as raised:
        check_settings(_settings(schema={"tree": "decals"}))
    assert str(raised.value) == (
        "schema.tree: 'decals' is neither a built-in tree (gz2, decals_dr5) nor an existing "
        "YAML file"
    )


def test_a_malformed_tree_file_is_named_with_its_line(tmp_path):
    tree = tmp_path / "my_tree.yaml"
    tree.write_text("questions:\n  - name: shape\n    answers: [round, cigar\n")
    with pytest.raises(ConfigError, match=rf"^schema.tree: {tree}, line 4, column 1: not valid"):
        check_settings(_settings(schema={"tree": str(tree)}))


@pytest.mark.parametrize("empty", ["catalogue", "images"])
def test_a_real_catalogue_without_its_files_names_the_empty_key(empty):
    data = {"source": "catalogue", "catalogue": "votes.csv", "images": "images"}
    data[empty] = ""
    with pytest.raises(ConfigError, match=f"^data.source is 'catalogue' but data.{empty} is empty"):
        check_settings(_settings(data=data))


def test_a_file_path_with_braces_is_refused_before_snakemake_reads_it_as_a_wildcard():
    data = {"source": "catalogue", "catalogue": "votes_{dr7}.csv", "images": "images"}
    with pytest.raises(ConfigError, match=r"^data.catalogue: 'votes_\{dr7\}.csv' contains a brace"):
        check_settings(_settings(data=data))


def test_a_given_model_that_is_missing_or_not_a_model_stops_before_anything_runs(tmp_path):
    def settings(model):
        config = _settings()
        config["predict"] = {"model": str(model)}
        config["preprocess"] = {"image_size": 32, "channels": "rgb"}
        config["train"] = {"head": "dirichlet"}
        return config

    with pytest.raises(
        ConfigError, match="neither a .keras file nor a run folder with model.keras"
    ):
        check_settings(settings(tmp_path / "absent.keras"))
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="neither a .keras file nor a run folder"):
        check_settings(settings(tmp_path / "run"))  # a folder without model.keras
    (tmp_path / "notes.keras").write_text("not a zip")
    with pytest.raises(ConfigError, match=r"notes.keras: not a Keras 3 .keras model file"):
        check_settings(settings(tmp_path / "notes.keras"))


def test_nested_command_line_overrides_take_the_schemas_types():
    """Snakemake hands `--config predict='{calibrate: false}'` over as {'calibrate': 'false'}."""
    from conftest import REPO
    from zooflow.configuration import type_by_schema

    config = {
        "preprocess": {"image_size": "48", "crop_fraction": "0.5"},
        "predict": {"calibrate": "false"},
        "train": {"dropout_rate": "null", "epochs": "many", "binomial_answer": "true"},
        "active_learning": {"seeds": ["1", "2"], "question_weights": {"bar": "2"}},
    }
    type_by_schema(config, REPO / "config" / "schema.yaml")
    assert config["preprocess"] == {"image_size": 48, "crop_fraction": 0.5}
    assert config["predict"] == {"calibrate": False}
    # A string the schema wants stays a string; a wrong value is left for validation to name.
    assert config["train"] == {"dropout_rate": None, "epochs": "many", "binomial_answer": "true"}
    assert config["active_learning"] == {"seeds": [1, 2], "question_weights": {"bar": 2}}


def test_config_readme_describes_every_key_of_the_schema():
    """The workflow catalog shows config/README.md as the configuration's documentation."""
    import re

    import yaml

    from conftest import REPO

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    readme = (REPO / "config" / "README.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)`[^\n]*\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S))
    for section, spec in schema["properties"].items():
        if "properties" not in spec:  # a top-level key such as seed
            assert re.search(rf"^\| `{section}` \|", readme, flags=re.M), section
            continue
        assert section in sections, f"config/README.md has no section for {section}"
        for key in spec["properties"]:
            assert re.search(rf"^\| `{key}` \|", sections[section], flags=re.M), f"{section}.{key}"


def test_config_readme_defaults_are_the_values_a_run_gets():
    """The "default" column is what a key left out of a user's file takes: config.yaml's value
    (every run reads it first), else the schema's default, else the mock survey's own."""
    import dataclasses
    import re

    import yaml

    from conftest import REPO
    from zooflow.mock import MockSurveyConfig

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    shipped = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    readme = (REPO / "config" / "README.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)`[^\n]*\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S))
    mock_defaults = {f.name: f.default for f in dataclasses.fields(MockSurveyConfig)}

    def shown(text, key):
        cell = re.search(rf"^\| `{key}` \| ([^|]*) \|", text, flags=re.M).group(1)
        return yaml.safe_load(cell.replace("`", ""))

    wrong = []
    for section, spec in schema.items():
        if "properties" not in spec:
            if shown(readme, section) != shipped.get(section, spec.get("default")):
                wrong.append(section)
            continue
        for key, key_spec in spec["properties"].items():
            if key in (shipped.get(section) or {}):
                expected = shipped[section][key]
            elif "default" in key_spec:
                expected = key_spec["default"]
            else:
                expected = mock_defaults[key] if section == "mock" else None
            if shown(sections[section], key) != expected:
                wrong.append(f"{section}.{key}")
    assert not wrong, f"config/README.md shows another default for {wrong}"


def test_the_schema_names_what_the_library_provides_with_the_same_defaults():
    """One source of truth: the schema's choices are the registries, and the training
    defaults a library user gets are the ones a workflow run gets."""
    import dataclasses

    import yaml

    from conftest import REPO
    from zooflow.acquisition import ACQUISITION_FUNCTIONS
    from zooflow.images import FITS_STRETCHES
    from zooflow.information import ESTIMATORS
    from zooflow.models import MODELS
    from zooflow.posteriors import HEADS
    from zooflow.training import DEVICES, TrainingConfig

    sections = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]

    def choices(section, key):
        spec = sections[section]["properties"][key]
        return set(spec.get("enum") or spec["items"]["enum"])

    assert choices("train", "model") == set(MODELS)
    assert choices("train", "head") == set(HEADS)
    assert choices("train", "device") == set(DEVICES)
    assert choices("active_learning", "strategies") == set(ACQUISITION_FUNCTIONS)
    assert choices("active_learning", "baseline") == set(ACQUISITION_FUNCTIONS)
    assert choices("active_learning", "information") == set(ESTIMATORS)
    assert choices("preprocess", "fits_stretch") == set(FITS_STRETCHES)

    train = sections["train"]["properties"]
    for field in dataclasses.fields(TrainingConfig):
        assert train[field.name].get("default") == field.default, field.name


SHIPPED_CONFIGS = sorted(
    str(path.relative_to(REPO))
    for path in [*(REPO / "config").glob("*.yaml"), *(REPO / "config" / "studies").glob("*.yaml")]
    # config.yaml is the default itself; trees (a top-level `questions`) are not configs.
    if path.name not in ("config.yaml", "schema.yaml")
    and "questions" not in yaml.safe_load(path.read_text())
)


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_every_shipped_config_is_valid_on_top_of_the_default(name):
    """A study config with a misspelt key would only fail when someone runs it, an hour in."""
    from snakemake.utils import update_config, validate

    from zooflow.mock.config import MockSurveyConfig

    config = yaml_default()
    update_config(config, yaml.safe_load((REPO / name).read_text()))
    validate(config, str(REPO / "config" / "schema.yaml"))
    if config["data"]["source"] == "mock":
        check_settings(config)
        MockSurveyConfig(**config["mock"])


def test_a_misspelt_key_in_a_study_config_is_refused():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = yaml_default()
    config["active_learning"]["round"] = 5
    with pytest.raises(WorkflowError, match="round"):
        validate(config, str(REPO / "config" / "schema.yaml"))


def yaml_default():

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())
