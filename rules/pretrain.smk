# Features every training starts from, trained on a separate mock survey (pretrain.enabled).
rule pretrain:
    input:
        tree=TREE,
        library=library("pretrain"),
    output:
        features=PRETRAINED_FEATURES,
        summary="results/pretrain/evaluation/summary.json",
    log:
        "logs/pretrain.log",
    benchmark:
        "results/benchmarks/pretrain.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        mock=pretrain_mock(),
        seed=config["pretrain"]["seed"],
        image_size=config["preprocess"]["image_size"],
        crop_fraction=config["preprocess"]["crop_fraction"],
        greyscale=config["preprocess"]["channels"] == "grey",
        train=pretrain_training(),
        passes=config["predict"]["passes"],
        examples_per_shard=config["shards"]["examples_per_shard"],
    script:
        "../scripts/pretrain.py"
