rule split:
    input:
        catalogue=f"{DATA}/catalogue.parquet",
        library=library("split"),
    output:
        splits=f"{DATA}/splits.csv",
    log:
        "logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        seed=config["seed"],
        test_fraction=config["splits"]["test_fraction"],
        val_fraction=config["splits"]["val_fraction"],
        initial_fraction=config["splits"]["initial_fraction"],
    script:
        "../scripts/split.py"
