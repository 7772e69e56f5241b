rule preprocess:
    input:
        catalogue=f"{DATA}/catalogue.parquet",
        library=library("preprocess"),
    output:
        images=f"{DATA}/images.h5",
    log:
        "logs/preprocess.log",
    benchmark:
        "results/benchmarks/preprocess.tsv"
    conda:
        "../envs/data.yaml"
    threads: workflow.cores
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        image_size=config["preprocess"]["image_size"],
        crop_fraction=config["preprocess"]["crop_fraction"],
        greyscale=config["preprocess"]["channels"] == "grey",
        fits_stretch=config["preprocess"]["fits_stretch"],
        fits_softening=config["preprocess"]["fits_softening"],
    script:
        "../scripts/preprocess.py"
