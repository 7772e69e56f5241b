rule shards:
    input:
        images=f"{DATA}/images.h5",
        catalogue=f"{DATA}/catalogue.parquet",
        splits=f"{DATA}/splits.csv",
        tree=tree_file(),
        library=library("shards", "schema"),
    output:
        shards=directory(f"{DATA}/shards/{{split}}"),
    log:
        "logs/shards/{split}.log",
    benchmark:
        "results/benchmarks/shards/{split}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: workflow.cores
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        question_suffix=config["schema"]["question_suffix"],
        examples_per_shard=config["shards"]["examples_per_shard"],
    script:
        "../scripts/shards.py"


rule data:
    input:
        data_products(),
