# Glue shared by every stage: paths, input functions, wildcard constraints.
import os
from types import SimpleNamespace

from zooflow.acquisition import POOL_WIDE
from zooflow.configuration import prediction_model
from zooflow.dependencies import import_closure
from zooflow.runlog import SNAKEMAKE_PROCESS, process_marker
from zooflow.splits import SPLITS
from zooflow.trees import BUILTIN_TREES

# Jobs import zooflow from this checkout, the same files `library()` tracks as inputs, whether
# they run in the current venv, a conda env (--sdm conda) or on a SLURM node (sbatch exports it).
# They also learn which Snakemake started them, so they end when it dies, and TensorFlow keeps
# its start-up banners to itself (errors still show; set TF_CPP_MIN_LOG_LEVEL=0 to see all).
# (Set here, not required from the user, so no `envvars:` directive.)
os.environ.update(
    {
        "PYTHONPATH": os.pathsep.join(
            p for p in (workflow.basedir, os.environ.get("PYTHONPATH", "")) if p
        ),
        SNAKEMAKE_PROCESS: process_marker(),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
)

DATA = "results/data"
ROUNDS = "al/{strategy}/seed_{seed}"  # one strategy's rounds, as named under logs/ and results/
AL = f"results/{ROUNDS}"
CAMPAIGN = config["active_learning"]["campaign_dir"]
FIRST_STRATEGY = config["active_learning"]["strategies"][0]
FIRST_ROUND_0 = f"results/al/{FIRST_STRATEGY}/seed_{{seed}}/round_0"


# A run is one trained model and what follows from it: the supervised run on every labelled
# galaxy ("full"), one active-learning round of one strategy and seed, or "predictions": a model
# given in predict.model, run over the whole catalogue without training.
RUN = r"full|predictions|al/[a-z_]+/seed_\d+/round_\d+"
PREDICTIONS = "predictions"
# predict.model's .keras file ('' when the workflow trains its own), checked against the config.
PREDICTION_MODEL = prediction_model(config)


wildcard_constraints:
    split="|".join(SPLITS),
    run=RUN,
    group=r"\d+",
    strategy=r"[a-z_]+",
    seed=r"\d+",
    round=r"\d+",


def verbatim(value):
    """A user's setting passed to a script exactly as written: Snakemake formats string params
    with the job's wildcards, which would read "{dr7objid}.jpg" as a wildcard. (A function's
    return value is not formatted.)"""
    return lambda wildcards: value


def checkout_file(path):
    """A file of the workflow's own checkout as an input, relative to the working directory:
    Snakemake records each job's set of inputs, and absolute paths would read as a changed set
    (rerunning every step) once the checkout and its results are moved or copied elsewhere.
    """
    return os.path.relpath(path)


def library(script):
    """Every zooflow module ``scripts/{script}.py`` imports, directly or through other zooflow
    modules (zooflow.dependencies reads them from the code), so that editing any module a job
    runs reruns it: Snakemake follows a script's own mtime but not the modules it imports.
    """
    return [
        checkout_file(path)
        for path in import_closure(
            os.path.join(workflow.basedir, "scripts", f"{script}.py"),
            os.path.join(workflow.basedir, "zooflow"),
        )
    ]


def tree_file():
    """The decision-tree YAML in use: a built-in one shipped in zooflow/trees, or the user's."""
    tree = config["schema"]["tree"]
    builtin = os.path.join(workflow.basedir, "zooflow", "trees", f"{tree}.yaml")
    return checkout_file(builtin) if tree in BUILTIN_TREES else tree


# That tree with schema.question_suffix written in, by resolve_tree; what every step reads.
TREE = f"{DATA}/tree.yaml"


PRETRAINED_FEATURES = "results/pretrain/features.weights.h5"


def pretrained_weights():
    """The local trunk weights every training starts from, if any; checked before anything runs.

    train.weights_path if set, else with pretrain.enabled the features this workflow trains on
    its separate pretraining survey.
    """
    path = config["train"]["weights_path"]
    if path and not os.path.isfile(path):
        raise WorkflowError(
            f"train.weights_path = {path!r}: no such file (zooflow never downloads weights)"
        )
    if not path and config["pretrain"]["enabled"]:
        return PRETRAINED_FEATURES
    return path or []


def _overrides(section, allowed, what):
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise WorkflowError(
            f"{what} {unknown} are not settings of that section; choose from {sorted(allowed)}"
        )
    return section


def pretrain_mock():
    """The pretraining survey: the main mock survey's settings with pretrain.mock's overrides."""
    overrides = _overrides(
        config["pretrain"]["mock"], config["mock"], "pretrain.mock keys"
    )
    return {**config["mock"], **overrides}


def pretrain_training():
    """The pretraining's train settings: train's, with pretrain.train's overrides."""
    settings = {k: v for k, v in config["train"].items() if k != "seed"}
    overrides = _overrides(config["pretrain"]["train"], settings, "pretrain.train keys")
    return {**settings, **overrides}


# finetune.tree, the new question(s), resolved with the same suffix by resolve_finetune_tree.
FINETUNE_TREE = "results/finetune/tree.yaml"


def finetune_tree():
    tree = config["finetune"]["tree"]
    if not tree:
        raise WorkflowError(
            "finetune needs finetune.tree: a YAML tree of the new question(s), whose vote "
            "columns are in the catalogue (README, 'New questions')"
        )
    return tree


def finetune_base_model():
    """The .keras file a fine-tuning starts from: finetune.base itself, or a run's model."""
    base = config["finetune"]["base"].rstrip("/")
    return base if base.endswith(".keras") else f"{base}/model.keras"


def finetune_settings():
    """finetune: minus the two paths, which are inputs."""
    return {
        key: value
        for key, value in config["finetune"].items()
        if key not in ("tree", "base")
    }


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


def predicted_splits(run):
    """The supervised run predicts every galaxy; a round its test set, its waiting pool and,
    when predictions are calibrated, the validation split they are calibrated on."""
    if not is_round(run):
        return list(SPLITS)
    return (
        ["test", "val", "pool"] if config["predict"]["calibrate"] else ["test", "pool"]
    )


def calibration_file(wildcards):
    """The run's temperatures, when predictions are calibrated (predict.calibrate). A given
    model brings its own when it comes from a run folder that has them."""
    if not config["predict"]["calibrate"]:
        return []
    if wildcards.run == PREDICTIONS:
        beside = os.path.join(os.path.dirname(PREDICTION_MODEL), "calibration.json")
        return beside if os.path.isfile(beside) else []
    return f"results/{wildcards.run}/calibration.json"


def model_file(wildcards):
    """The model a run predicts with: its own training's, or predict.model's."""
    if wildcards.run != PREDICTIONS:
        return f"results/{wildcards.run}/model.keras"
    if not PREDICTION_MODEL:
        raise WorkflowError(
            "results/predictions/ holds a given model's predictions: set predict.model to a "
            ".keras file or a run folder (e.g. results/full of a finished run)"
        )
    return PREDICTION_MODEL


def prediction_products():
    """A prediction-only run: every split's predictions and, for a Dirichlet model, the
    catalogue's release tables."""
    predictions = expand(
        f"results/{PREDICTIONS}/{{split}}_predictions.h5", split=SPLITS
    )
    predictions += representation_products(PREDICTIONS) + explorer_products(PREDICTIONS)
    if config["train"]["head"] != "dirichlet":
        return predictions
    return predictions + expand(
        f"results/{PREDICTIONS}/release/catalogue_{{table}}",
        table=["friendly.parquet", "advanced.parquet", "friendly.csv"],
    )


def main_products():
    """The default target's products besides the data stage: a given model's predictions
    (predict.model), or else the active-learning study or campaign."""
    return prediction_products() if PREDICTION_MODEL else al_products()


def prediction_inputs(wildcards):
    """Shards of every split the run predicts, and a round's list of waiting galaxies."""
    inputs = {
        f"shards_{split}": shards(split) for split in predicted_splits(wildcards.run)
    }
    if is_round(wildcards.run):
        inputs["waiting"] = f"results/{wildcards.run}/unlabelled.csv"
    return inputs


def prediction_groups(wildcards):
    groups = range(config["predict"]["shard_groups"])
    return [f"results/{wildcards.run}/predictions/group_{g}" for g in groups]


def release_products(run, splits):
    """GZ DECaLS-style tables of a run's predictions (Dirichlet concentrations only)."""
    if config["train"]["head"] != "dirichlet":
        return []
    return expand(
        f"results/{run}/release/{{split}}_{{table}}",
        split=splits,
        table=["friendly.parquet", "advanced.parquet", "friendly.csv"],
    )


def wants_representations(run):
    """Representations are written for the full run and prediction-only runs, on request."""
    return config["representations"]["enabled"] and run in ("full", PREDICTIONS)


def similar_ids_file():
    return config["similar"]["ids_file"] or []


def representation_products(run):
    if not wants_representations(run):
        return []
    products = expand(
        f"results/{run}/representations/{{split}}{{kind}}.parquet",
        split=SPLITS,
        kind=["", "_pca"],
    ) + [
        f"results/{run}/representations/pca.json",
        f"results/{run}/representations/anomalies.csv",
        f"results/{run}/representations/anomalies.png",
    ]
    if config["similar"]["ids"] or config["similar"]["ids_file"]:
        products += [f"results/{run}/representations/similar.csv"]
        products += [f"results/{run}/representations/similar.png"]
    return products


def truth_table():
    """The mock survey's true vote fractions; real catalogues have none."""
    return f"{DATA}/mock/truth.parquet" if config["data"]["source"] == "mock" else []


def run_products(run):
    return [
        f"results/{run}/evaluation/summary.json",
        f"results/{run}/evaluation/summary.html",
        f"results/{run}/figures/coverage.png",
        f"results/{run}/figures/pit.png",
        f"results/{run}/figures/posteriors.png",
        f"results/{run}/figures/training.png",
    ]


def run_seed(wildcards):
    """The seed a run's training and prediction use, from the table of runs."""
    return run_record(wildcards.run)["seed"]


def training_settings(wildcards):
    """The `train:` settings a run's training reads (its seed travels separately, as `seed`):
    with pretraining, weights_path names the pretrained features; active-learning rounds take
    active_learning.train's overrides (e.g. freeze_trunk)."""
    settings = {key: value for key, value in config["train"].items() if key != "seed"}
    settings["weights_path"] = pretrained_weights() or ""
    if is_round(wildcards.run):
        overrides = _overrides(
            config["active_learning"]["train"], settings, "active_learning.train keys"
        )
        settings.update(overrides)
    if (
        settings.get("freeze_trunk")
        and not settings["weights_path"]
        and not warm_start_model(wildcards)
    ):
        # Said while the plan is built, not after the data stage at the first training.
        key = "active_learning.train" if is_round(wildcards.run) else "train"
        raise WorkflowError(
            f"{key}.freeze_trunk is true: {wildcards.run} would train only the head on fixed "
            "features, but there are none to keep (pretrain.enabled is false and "
            f"train.weights_path is empty). Set {key}.freeze_trunk: false to train every "
            "layer (as config/w20_bar.yaml does), or pretrain.enabled: true"
        )
    return settings


def frozen_round(wildcards):
    """An active-learning round that keeps its pretrained features and trains only the head:
    a few seconds of CPU work on features computed once, no GPU needed."""
    if not is_round(wildcards.run):
        return False
    return bool(training_settings(wildcards).get("freeze_trunk"))


def network_threads(wildcards):
    """Training and prediction use every core, except a frozen round's small head, so that
    several rounds run side by side."""
    return 1 if frozen_round(wildcards) else workflow.cores


def network_gpus(wildcards):
    """One GPU for training and prediction (the workstation profile runs one such job at a
    time); none for a frozen round's head."""
    return 0 if frozen_round(wildcards) else 1


def al_run(strategy, seed, round_):
    """The run name of one active-learning round: its folder under results/ and logs/."""
    return f"al/{strategy}/seed_{seed}/round_{round_}"


def acquisition_seed(wildcards):
    """A round's acquisition draws: one seed per (study seed, round)."""
    return int(wildcards.seed) * 1000 + int(wildcards.round)


def scored_by_group(strategy):
    """Whether a strategy's round scores the pool one prediction group at a time (score_group):
    with more than one group, for every strategy that scores a galaxy from its own predictions.
    """
    return config["predict"]["shard_groups"] > 1 and strategy not in POOL_WIDE


def pool_scores(wildcards):
    """What acquire ranks: the groups' scores, or the pool's gathered predictions."""
    if scored_by_group(wildcards.strategy):
        groups = range(config["predict"]["shard_groups"])
        return {
            "scores": [
                f"{round_dir(wildcards)}/scores/group_{g}.parquet" for g in groups
            ]
        }
    return {"predictions": f"{round_dir(wildcards)}/pool_predictions.h5"}


def round_calibration_file(wildcards):
    run = al_run(wildcards.strategy, wildcards.seed, int(wildcards.round))
    return calibration_file(SimpleNamespace(run=run))


def round_dir(wildcards, round_offset=0):
    r = int(wildcards.round) + round_offset
    return f"results/{al_run(wildcards.strategy, wildcards.seed, r)}"


def published(round_):
    """A campaign round is published once its to_label.csv exists: volunteers may be at it."""
    return os.path.exists(f"{CAMPAIGN}/round_{round_}/to_label.csv")


def unpublished_round():
    """Rounds whose to_label.csv may still be written: a published list is never rewritten."""
    done = [str(r) for r in range(config["active_learning"]["rounds"]) if published(r)]
    return rf"(?!(?:{'|'.join(done)})$)\d+" if done else r"\d+"


def oracle_inputs(wildcards):
    """What the oracle reads to build round r: held-back catalogue votes for the acquired
    galaxies, or, in a campaign, every earlier round's published list and volunteers' votes.
    """
    if config["active_learning"]["oracle"] != "campaign":
        return {
            "acquired": f"{round_dir(wildcards, -1)}/acquired.csv",
            "catalogue": f"{DATA}/catalogue.parquet",
        }
    r = int(wildcards.round)
    asked = [f"{CAMPAIGN}/round_{k}/to_label.csv" for k in range(r)]
    votes = [f"{CAMPAIGN}/round_{k}/votes.csv" for k in range(r)]
    if published(r):
        # A published round is frozen: votes that arrive later join the next round instead.
        asked, votes = [ancient(p) for p in asked], [ancient(p) for p in votes]
    return {"asked": asked, "votes": votes}


def warm_start_model(wildcards):
    """The previous round's model, when rounds continue training instead of restarting."""
    record = run_record(wildcards.run)
    if (
        not config["active_learning"]["warm_start"]
        or record["kind"] != "round"
        or record["round"] == 0
    ):
        return []
    previous = al_run(record["strategy"], record["seed"], record["round"] - 1)
    return f"results/{previous}/model.keras"


def campaign_rounds_ready():
    """Rounds whose volunteers' votes have been placed in the campaign folder."""
    ready = 0
    while os.path.exists(f"{CAMPAIGN}/round_{ready}/votes.csv"):
        ready += 1
    return ready


def supervised_seed():
    """The supervised run uses train.seed if set, else the global seed (which also draws the
    survey and its splits); active-learning repeats differ by their own seeds."""
    seed = config["train"]["seed"]
    return seed if seed is not None else config["seed"]


def round_records():
    """One record per active-learning round this configuration defines, in run order."""
    settings = config["active_learning"]
    return [
        {
            "run": al_run(strategy, seed, r),
            "folder": f"results/{al_run(strategy, seed, r)}",
            "kind": "round",
            "strategy": strategy,
            "seed": seed,
            "round": r,
        }
        for strategy in settings["strategies"]
        for seed in settings["seeds"]
        for r in range(settings["rounds"])
    ]


def runs_table():
    """The workflow's table of runs, in the spirit of a samples sheet: every model the workflow
    trains or predicts with (kind full, predictions or round), with its strategy, seed, round
    and folder, so that nothing downstream parses them back out of paths."""
    no_round = {"strategy": None, "round": None}
    records = [
        {
            "run": "full",
            "folder": "results/full",
            "kind": "full",
            "seed": supervised_seed(),
        }
        | no_round,
        {
            "run": PREDICTIONS,
            "folder": f"results/{PREDICTIONS}",
            "kind": "predictions",
            "seed": supervised_seed(),
        }
        | no_round,
    ]
    return {record["run"]: record for record in records + round_records()}


RUNS = runs_table()


def run_record(run):
    """A run's row of RUNS; a folder this configuration does not make is a clear error."""
    if run not in RUNS:
        raise WorkflowError(
            f"results/{run} is not a run of this configuration: its active-learning rounds "
            f"are strategies {config['active_learning']['strategies']}, seeds "
            f"{config['active_learning']['seeds']}, rounds 0-"
            f"{config['active_learning']['rounds'] - 1}"
        )
    return RUNS[run]


def is_round(run):
    return run_record(run)["kind"] == "round"


def al_rounds():
    """The rounds to run, as records of RUNS: every round of the study, or in a campaign the
    rounds whose votes are in, and the next."""
    settings = config["active_learning"]
    records = round_records()
    if settings["oracle"] != "campaign":
        return records
    if len(settings["strategies"]) != 1 or len(settings["seeds"]) != 1:
        raise WorkflowError(
            "a campaign runs one strategy and one seed: set active_learning.strategies "
            "and active_learning.seeds to one value each"
        )
    ready = min(campaign_rounds_ready() + 1, settings["rounds"])
    return [record for record in records if record["round"] < ready]


def al_runs():
    """The names of the rounds al_rounds() lists."""
    return [record["run"] for record in al_rounds()]


def al_products():
    settings = config["active_learning"]
    if settings["oracle"] == "campaign":
        strategy, seed = settings["strategies"][0], settings["seeds"][0]
        latest = len(al_runs()) - 1
        return [f"{CAMPAIGN}/round_{latest}/to_label.csv"] + [
            f"results/{run}/evaluation/summary.json" for run in al_runs()
        ]
    products = ["results/al/learning_curves.csv", "results/al/labels_saved.json"]
    for strategy in settings["strategies"]:
        for seed in settings["seeds"]:
            products.append(f"results/{al_run(strategy, seed, 0)}/gallery.png")
    # The report shows the study's final model: the last round of its first strategy and seed.
    final = al_run(FIRST_STRATEGY, settings["seeds"][0], settings["rounds"] - 1)
    return products + run_products(final)


# The run the explorer shows: the supervised run, or in a prediction-only run (predict.model)
# the given model's predictions.
EXPLORED_RUN = PREDICTIONS if PREDICTION_MODEL else "full"


def explorer_products(run):
    """The browsable site (explorer.enabled), built with the run it shows: `full`, or the
    default target of a prediction-only run."""
    wanted = config["explorer"]["enabled"] and run == EXPLORED_RUN
    return ["results/explorer/index.html"] if wanted else []


def explorer_representations():
    """The compressed representations the explorer's neighbours come from, when written."""
    if not wants_representations(EXPLORED_RUN):
        return []
    return expand(
        f"results/{EXPLORED_RUN}/representations/{{split}}_pca.parquet", split=SPLITS
    )


def explorer_rounds():
    """The active-learning rounds the explorer shows (explorer.active_learning): records of
    al_rounds() for every round that acquired (a study's last round only trains). None when the
    default target runs no study (predict.model): the explorer never asks for trainings of its
    own."""
    settings = config["active_learning"]
    if not config["explorer"]["active_learning"] or PREDICTION_MODEL:
        return []
    records = al_rounds()
    if settings["oracle"] != "campaign":
        records = [r for r in records if r["round"] < settings["rounds"] - 1]
    return records


def explorer_round_files(name):
    """Each of explorer_rounds()' `name` file (acquired.csv, scores.csv), in the same order."""
    return [f"{r['folder']}/{name}" for r in explorer_rounds()]
