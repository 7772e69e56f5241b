# A question the network was not trained on, learned from few labels on its trunk
# (`snakemake finetune`): see zooflow.finetune.


# The new tree with the main tree's question suffix, as rule resolve_tree writes that one.
rule resolve_finetune_tree:
    input:
        tree=lambda wildcards: finetune_tree(),
        library=library("resolve_tree"),
    output:
        tree=FINETUNE_TREE,
    log:
        "logs/finetune/resolve_tree.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        question_suffix=verbatim(config["schema"]["question_suffix"]),
    script:
        "../scripts/resolve_tree.py"


# The new tree's votes, checked row by row as the main catalogue is, from the same source.
rule finetune_catalogue:
    input:
        catalogue=catalogue_source(),
        images=images_source(),
        tree=FINETUNE_TREE,
        library=library("ingest"),
    output:
        clean="results/finetune/catalogue.parquet",
    log:
        main="logs/finetune/ingest.log",
        rejected="results/finetune/rejected.csv",
    conda:
        "../envs/data.yaml"
    threads: workflow.cores
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        id_column=verbatim(config["data"]["id_column"]),
        file_column=verbatim(config["data"]["file_column"]),
        file_template=verbatim(config["data"]["file_template"]),
        column_mapping=verbatim(config["data"]["column_mapping"]),
        tree_tolerance=config["ingest"]["tree_tolerance"],
        tree_tolerance_votes=config["ingest"]["tree_tolerance_votes"],
        max_rejected_fraction=config["ingest"]["max_rejected_fraction"],
        # ingest.min_votes names the survey tree's questions and has selected the sample there;
        # this catalogue is read with the new question's tree.
        min_votes={},
        votes_optional=False,
    script:
        "../scripts/ingest.py"


rule finetune:
    input:
        base=finetune_base_model(),
        shards=[shards(split) for split in SPLITS],
        catalogue="results/finetune/catalogue.parquet",
        splits=f"{DATA}/splits.csv",
        tree=FINETUNE_TREE,
        shard_tree=TREE,
        library=library("finetune"),
    output:
        model="results/finetune/model.keras",
        history="results/finetune/history.csv",
        predictions="results/finetune/test_predictions.h5",
        evaluation="results/finetune/evaluation.json",
    log:
        "logs/finetune/finetune.log",
    benchmark:
        "results/benchmarks/finetune.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        settings=finetune_settings(),
        seed=config["seed"],
        passes=config["predict"]["passes"],
        min_votes=config["evaluate"]["min_votes"],
    script:
        "../scripts/finetune.py"
