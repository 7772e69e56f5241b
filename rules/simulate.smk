rule simulate:
    input:
        tree=TREE,
        library=library("simulate"),
    output:
        images=directory(f"{DATA}/mock/images"),
        catalogue=f"{DATA}/mock/catalogue.csv",
        truth=f"{DATA}/mock/truth.parquet",
    log:
        "logs/simulate.log",
    benchmark:
        "results/benchmarks/simulate.tsv"
    conda:
        "../envs/data.yaml"
    threads: workflow.cores
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        mock=config["mock"],
        seed=config["seed"],
    script:
        "../scripts/simulate.py"
