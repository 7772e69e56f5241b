"""Decision trees shipped with zooflow, named as `schema.tree` takes them (no imports beyond the
standard library: the Snakemake process resolves the tree before any job runs)."""

from pathlib import Path

BUILTIN_TREES = ("gz2", "decals_dr5")


def tree_path(tree: str) -> str:
    """The YAML file of a built-in tree, or ``tree`` itself (a user's file)."""
    return str(Path(__file__).with_name(f"{tree}.yaml")) if tree in BUILTIN_TREES else tree
