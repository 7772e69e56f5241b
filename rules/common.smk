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


# A run is one trained model and what follows from it: the supervised run on every labelled
# galaxy ("full"), or one active-learning round of one strategy and seed.
RUN = r"full|al/[a-z_]+/seed_\d+/round_\d+"


wildcard_constraints:
    split="|".join(SPLITS),
    run=RUN,
    group=r"\d+",


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


def shards(split):
    return f"{DATA}/shards/{split}"


def prediction_targets(wildcards):
    """Only the galaxies still unlabelled are predicted in the pool; the test set in full."""
    if wildcards.split == "pool":
        return {"ids": f"results/{wildcards.run}/unlabelled.csv"}
    return {}


def prediction_groups(wildcards):
    groups = range(config["predict"]["shard_groups"])
    return [
        f"results/{wildcards.run}/predictions/{wildcards.split}/group_{g}.h5"
        for g in groups
    ]


def truth_table():
    """The mock survey's true vote fractions; real catalogues have none."""
    return f"{DATA}/mock/truth.parquet" if config["data"]["source"] == "mock" else []


def run_products(run):
    return [
        f"results/{run}/evaluation/summary.json",
        f"results/{run}/figures/coverage.png",
        f"results/{run}/figures/posteriors.png",
        f"results/{run}/figures/training.png",
    ]
