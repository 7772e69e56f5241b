# Glue shared by every stage: paths, input functions, wildcard constraints.
import os

# Jobs import zooflow from this checkout, the same files `library()` tracks as inputs, whether
# they run in the current venv, a conda env (--sdm conda) or on a SLURM node (sbatch exports it).
# (Set here, not required from the user, so no `envvars:` directive.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH", "")) if p
    )
)

DATA = "results/data"
SPLITS = ["test", "val", "initial", "pool"]


wildcard_constraints:
    split="|".join(SPLITS),


def library(*modules):
    """The zooflow modules a rule's script imports, so that editing one reruns the rule.

    Snakemake follows a script's own mtime but not the modules it imports.
    """
    return [os.path.join(workflow.basedir, "zooflow", f"{m}.py") for m in modules]


def tree_file():
    """The decision-tree YAML in use: a built-in one shipped in zooflow/trees, or the user's."""
    tree = config["schema"]["tree"]
    builtin = os.path.join(workflow.basedir, "zooflow", "trees", f"{tree}.yaml")
    return builtin if tree in ("gz2", "decals_dr5") else tree


def catalogue_source():
    if config["data"]["source"] == "mock":
        return f"{DATA}/mock/catalogue.csv"
    return config["data"]["catalogue"]


def images_source():
    if config["data"]["source"] == "mock":
        return f"{DATA}/mock/images"
    return config["data"]["images"]


def data_products():
    return expand(f"{DATA}/shards/{{split}}", split=SPLITS)
