rule predict:
    input:
        unpack(prediction_inputs),
        model=model_file,
        tree=TREE,
        library=library("predict"),
    output:
        predictions=temp(directory("results/{run}/predictions/group_{group}")),
    log:
        "logs/{run}/predict_{group}.log",
    benchmark:
        "results/benchmarks/{run}/predict_{group}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: network_threads
    resources:
        gpu=network_gpus,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        splits=lambda wildcards: predicted_splits(wildcards.run),
        features=lambda wildcards: wants_representations(wildcards.run),
        passes=config["predict"]["passes"],
        batch_size=config["predict"]["batch_size"],
        shard_groups=config["predict"]["shard_groups"],
        seed=run_seed,
    script:
        "../scripts/predict.py"


# One temperature per question, fitted on the validation split's predictions and applied when
# the shard groups are gathered: post-hoc calibration, kept beside the model.
rule calibrate:
    input:
        parts=prediction_groups,
        tree=TREE,
        library=library("calibrate"),
    output:
        calibration="results/{run}/calibration.json",
    log:
        "logs/{run}/calibrate.log",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        enabled=config["predict"]["calibrate"],
        min_votes=config["evaluate"]["min_votes"],
        seed=config["seed"],
    script:
        "../scripts/calibrate.py"


rule gather_predictions:
    input:
        parts=prediction_groups,
        calibration=calibration_file,
        tree=TREE,
        library=library("gather_predictions"),
    output:
        predictions="results/{run}/{split}_predictions.h5",
        summary="results/{run}/{split}_posteriors.parquet",
    log:
        "logs/{run}/gather_{split}.log",
    benchmark:
        "results/benchmarks/{run}/gather_{split}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        binomial_answer=config["train"]["binomial_answer"],
        seed=config["seed"],
    script:
        "../scripts/gather_predictions.py"


# The tables a survey team publishes (GZ DECaLS' friendly and advanced forms): see zooflow.release.
rule release_tables:
    input:
        predictions="results/{run}/{split}_predictions.h5",
        tree=TREE,
        library=library("release_tables"),
    output:
        friendly="results/{run}/release/{split}_friendly.parquet",
        advanced="results/{run}/release/{split}_advanced.parquet",
        friendly_csv="results/{run}/release/{split}_friendly.csv",
    log:
        "logs/{run}/release_{split}.log",
    benchmark:
        "results/benchmarks/{run}/release_{split}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/release_tables.py"


# A given model's predictions of the whole catalogue (every split) as one set of tables.
rule release_catalogue:
    input:
        predictions=expand(
            f"results/{PREDICTIONS}/{{split}}_predictions.h5", split=SPLITS
        ),
        tree=TREE,
        library=library("release_tables"),
    output:
        friendly=f"results/{PREDICTIONS}/release/catalogue_friendly.parquet",
        advanced=f"results/{PREDICTIONS}/release/catalogue_advanced.parquet",
        friendly_csv=f"results/{PREDICTIONS}/release/catalogue_friendly.csv",
    log:
        f"logs/{PREDICTIONS}/release_catalogue.log",
    benchmark:
        f"results/benchmarks/{PREDICTIONS}/release_catalogue.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/release_tables.py"
