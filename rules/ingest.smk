rule ingest:
    input:
        catalogue=catalogue_source(),
        images=images_source(),
        tree=TREE,
        library=library("ingest"),
    output:
        clean=f"{DATA}/catalogue.parquet",
    log:
        # rejected.csv is a log, not an output: Snakemake keeps logs of a failed job, and the
        # user needs it most when too many rows were rejected.
        main="logs/ingest.log",
        rejected=f"{DATA}/rejected.csv",
    benchmark:
        "results/benchmarks/ingest.tsv"
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
        min_votes=config["ingest"]["min_votes"],
        # A catalogue only to predict may come without vote columns.
        votes_optional=bool(config["predict"]["model"]),
    script:
        "../scripts/ingest.py"
