"""The workflow's configuration as a person writes it: YAML mistakes with their file and line,
command-line overrides typed by the schema, and settings that must agree with each other.

The Snakefile calls these before anything is planned, so a mistake stops the run with the key
or file to fix instead of surfacing later as a missing file or a job's traceback.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

import yaml

from zooflow.trees import BUILTIN_TREES, tree_path


class ConfigError(ValueError):
    """A configuration that cannot run: names the key or file and what to do."""


def readable_yaml(path: str | Path, key: str = "") -> str:
    """``path`` if it parses as YAML, else a ConfigError naming its file, line and column (and
    the config ``key`` that names the file, if any)."""
    prefix = f"{key}: " if key else ""
    try:
        yaml.safe_load(Path(path).read_text())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{prefix}{path}{where}: not valid YAML ({err.problem}). Indent with spaces only, and "
            "quote values that contain ': ' or start with a special character."
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{prefix}{path}: not valid YAML ({err})") from None
    return str(path)


_SCALAR_TYPES = {
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def _typed(value, schema: dict):
    """``value`` as the schema's type when it is a string that YAML reads as that type."""
    if isinstance(value, MutableMapping):
        properties = schema.get("properties", {})
        others = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, others if isinstance(others, dict) else {})
            value[key] = _typed(item, sub)
        return value
    if isinstance(value, list):
        items = schema.get("items", {})
        return [_typed(item, items) if isinstance(items, dict) else item for item in value]
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if not isinstance(value, str) or "string" in types or not types:
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    for name in types:
        wanted = _SCALAR_TYPES.get(name, ())
        if isinstance(parsed, wanted) and not (name != "boolean" and isinstance(parsed, bool)):
            return parsed
    return value


def type_by_schema(config: MutableMapping, schema_path: str | Path) -> None:
    """Give command-line overrides the types the schema expects, in place.

    Snakemake hands over nested ``--config`` values as strings (``--config
    predict='{calibrate: false}'`` arrives as ``'false'``), which the schema would refuse.
    A string becomes a boolean, number or null only where the schema asks for one and YAML
    reads it as one; anything else is left for validation to report.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    _typed(config, schema)


def check_settings(config: dict) -> None:
    """Settings the schema cannot check on its own: the tree exists and parses, and a real
    catalogue names its files. (Only PyYAML here: this runs in the Snakemake process.)"""
    tree = config["schema"]["tree"]
    if tree not in BUILTIN_TREES and not Path(tree).is_file():
        raise ConfigError(
            f"schema.tree: {tree!r} is neither a built-in tree ({', '.join(BUILTIN_TREES)}) nor "
            "an existing YAML file"
        )
    readable_yaml(tree_path(tree), "schema.tree")
    data = config["data"]
    if data["source"] == "catalogue":
        for key in ("catalogue", "images"):
            if not str(data[key]).strip():
                raise ConfigError(
                    f"data.source is 'catalogue' but data.{key} is empty: set data.catalogue to "
                    "your CSV or parquet vote catalogue and data.images to the folder its image "
                    "paths are relative to (config/gz2.yaml shows both)"
                )
    _check_paths_have_no_braces(config)
    prediction_model(config)


def prediction_model(config: dict) -> str:
    """``predict.model``'s .keras file after checking that it fits the configuration (tree,
    image size, channels, head); '' when the run trains its own models."""
    model = str(config["predict"].get("model") or "")
    if not model:
        return ""
    from zooflow.modelcard import (
        ModelCardError,
        check_model_fits,
        read_model_card,
        resolve_model_path,
    )
    from zooflow.schema import load_schema

    try:
        card = read_model_card(resolve_model_path(model))
        check_model_fits(
            card,
            label_cols=load_schema(
                tree_path(config["schema"]["tree"]), config["schema"]["question_suffix"]
            ).label_cols,
            image_size=config["preprocess"]["image_size"],
            channels=1 if config["preprocess"]["channels"] == "grey" else 3,
            head=config["train"]["head"],
        )
    except ModelCardError as err:
        raise ConfigError(str(err)) from None
    return str(card.path)


# Settings that Snakemake uses as file paths: it reads `{name}` in a path as a wildcard.
PATH_SETTINGS = (
    ("schema", "tree"),
    ("data", "catalogue"),
    ("data", "images"),
    ("train", "weights_path"),
    ("predict", "model"),
    ("similar", "ids_file"),
    ("active_learning", "campaign_dir"),
    ("finetune", "tree"),
    ("finetune", "base"),
)


def _check_paths_have_no_braces(config: dict) -> None:
    for section, key in PATH_SETTINGS:
        value = str(config.get(section, {}).get(key) or "")
        if "{" in value or "}" in value:
            raise ConfigError(
                f"{section}.{key}: {value!r} contains a brace; Snakemake reads '{{name}}' in a "
                "file path as a wildcard. Rename the file or folder, or link it under a name "
                "without braces (ln -s)"
            )
