# Each galaxy's representation (the trunk's pooled features), written by the prediction pass
# itself, as tables with a principal-component copy: see zooflow.representations.
rule representations:
    input:
        predictions=expand("results/{{run}}/{split}_predictions.h5", split=SPLITS),
        library=library("representations"),
    output:
        tables=expand(
            "results/{{run}}/representations/{split}{kind}.parquet",
            split=SPLITS,
            kind=["", "_pca"],
        ),
        pca="results/{run}/representations/pca.json",
    log:
        "logs/{run}/representations.log",
    benchmark:
        "results/benchmarks/{run}/representations.tsv"
    wildcard_constraints:
        run=f"full|{PREDICTIONS}",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        pca_components=config["representations"]["pca_components"],
    script:
        "../scripts/representations.py"


# Look-alikes of the galaxies a user names (similar.ids / similar.ids_file).
rule similar:
    input:
        tables=expand(
            "results/{{run}}/representations/{split}_pca.parquet", split=SPLITS
        ),
        images=f"{DATA}/images.h5",
        ids_file=similar_ids_file(),
        library=library("similar"),
    output:
        similar="results/{run}/representations/similar.csv",
        gallery=report(
            "results/{run}/representations/similar.png",
            caption="../report/similar.rst",
            category="Representations",
            subcategory="{run}",
        ),
    log:
        "logs/{run}/similar.log",
    benchmark:
        "results/benchmarks/{run}/similar.tsv"
    wildcard_constraints:
        run=f"full|{PREDICTIONS}",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        ids=verbatim(config["similar"]["ids"]),
        k=config["similar"]["k"],
    script:
        "../scripts/similar.py"


# The odd ones out: every galaxy ranked by its distance to its k-th neighbour in the
# representation space, with the top of the list as a gallery.
rule anomalies:
    input:
        tables=expand(
            "results/{{run}}/representations/{split}_pca.parquet", split=SPLITS
        ),
        images=f"{DATA}/images.h5",
        library=library("anomalies"),
    output:
        anomalies="results/{run}/representations/anomalies.csv",
        gallery=report(
            "results/{run}/representations/anomalies.png",
            caption="../report/anomalies.rst",
            category="Representations",
            subcategory="{run}",
        ),
    log:
        "logs/{run}/anomalies.log",
    benchmark:
        "results/benchmarks/{run}/anomalies.tsv"
    wildcard_constraints:
        run=f"full|{PREDICTIONS}",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        k=config["anomalies"]["k"],
        reference_size=config["anomalies"]["reference_size"],
        seed=config["seed"],
        gallery_size=config["anomalies"]["gallery_size"],
    script:
        "../scripts/anomalies.py"
