rule full_training_set:
    input:
        splits=f"{DATA}/splits.csv",
        catalogue=f"{DATA}/catalogue.parquet",
        tree=TREE,
        library=library("full_training_set"),
    output:
        labelled="results/full/labelled.csv",
    log:
        "logs/full/training_set.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        splits=["initial", "pool"],
    script:
        "../scripts/full_training_set.py"


rule train:
    input:
        shards=[shards("initial"), shards("pool")],
        val=shards("val"),
        labelled="results/{run}/labelled.csv",
        warm_start=warm_start_model,
        # A pretrained trunk is an input, so replacing the file retrains what started from it.
        pretrained=pretrained_weights(),
        tree=TREE,
        library=library("train"),
    output:
        model="results/{run}/model.keras",
        history="results/{run}/history.csv",
        tensorboard=directory("results/{run}/tensorboard"),
    log:
        "logs/{run}/train.log",
    benchmark:
        "results/benchmarks/{run}/train.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: network_threads
    resources:
        gpu=network_gpus,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        train=training_settings,
        seed=run_seed,
        # What a killed training resumes from; not an output, so Snakemake leaves it in place.
        state_dir=lambda wildcards: f"results/{wildcards.run}/train_state",
    script:
        "../scripts/train.py"


# A trained model's feature extractor, for `train.weights_path` of another run or survey.
rule export_features:
    input:
        model="results/{run}/model.keras",
        library=library("export_features"),
    output:
        weights="results/{run}/features.weights.h5",
    log:
        "logs/{run}/export_features.log",
    conda:
        "../envs/tensorflow.yaml"
    script:
        "../scripts/export_features.py"


# Round 0 is the same for every strategy (initial set, seed): the first strategy trains it and
# the others copy its model, saving one training per extra strategy and seed.
ruleorder: share_round_0 > train


rule share_round_0:
    input:
        model=f"{FIRST_ROUND_0}/model.keras",
        history=f"{FIRST_ROUND_0}/history.csv",
        source_labelled=f"{FIRST_ROUND_0}/labelled.csv",
        labelled=f"{AL}/round_0/labelled.csv",
        library=library("share_round_0"),
    output:
        model=f"{AL}/round_0/model.keras",
        history=f"{AL}/round_0/history.csv",
    log:
        f"logs/{ROUNDS}/round_0/share.log",
    wildcard_constraints:
        strategy=rf"(?!{FIRST_STRATEGY}$)[a-z_]+",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/share_round_0.py"
