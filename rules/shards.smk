rule shards:
    input:
        images=f"{DATA}/images.h5",
        catalogue=f"{DATA}/catalogue.parquet",
        splits=f"{DATA}/splits.csv",
        tree=TREE,
        library=library("shards"),
    output:
        test=directory(shards("test")),
        val=directory(shards("val")),
        initial=directory(shards("initial")),
        pool=directory(shards("pool")),
    log:
        "logs/shards.log",
    benchmark:
        "results/benchmarks/shards.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: workflow.cores
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        examples_per_shard=config["shards"]["examples_per_shard"],
    script:
        "../scripts/shards.py"


rule data:
    input:
        data_products(),
