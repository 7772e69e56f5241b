# A browsable site of the supervised run, or of a prediction-only run's predictions
# (EXPLORED_RUN): every galaxy's thumbnail and posteriors, its neighbours (with representations)
# and, with explorer.active_learning, what each strategy acquired: see zooflow.explorer. Its
# inputs are files the run writes anyway.
rule explorer:
    input:
        posteriors=expand(
            f"results/{EXPLORED_RUN}/{{split}}_posteriors.parquet", split=SPLITS
        ),
        images=f"{DATA}/images.h5",
        catalogue=f"{DATA}/catalogue.parquet",
        representations=explorer_representations(),
        acquired=explorer_round_files("acquired.csv"),
        scores=explorer_round_files("scores.csv"),
        tree=TREE,
        library=library("explorer"),
    output:
        index="results/explorer/index.html",
        data="results/explorer/data.js",
        thumbnails=directory("results/explorer/thumbnails"),
    log:
        "logs/explorer.log",
    benchmark:
        "results/benchmarks/explorer.tsv"
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        splits=SPLITS,
        rounds=explorer_rounds(),
        neighbours=config["explorer"]["neighbours"],
        thumbnail_size=config["explorer"]["thumbnail_size"],
        max_galaxies=config["explorer"]["max_galaxies"],
    script:
        "../scripts/explorer.py"
