rule evaluate:
    input:
        predictions="results/{run}/test_predictions.h5",
        truth=truth_table(),
        # The run's training set, for the training-mean baseline every model must beat.
        labelled="results/{run}/labelled.csv",
        tree=TREE,
        library=library("evaluate"),
    output:
        regression="results/{run}/evaluation/regression.csv",
        questions="results/{run}/evaluation/questions.csv",
        coverage="results/{run}/evaluation/coverage.csv",
        confident="results/{run}/evaluation/confident.csv",
        pit="results/{run}/evaluation/pit.csv",
        summary="results/{run}/evaluation/summary.json",
    log:
        "logs/{run}/evaluate.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        min_votes=config["evaluate"]["min_votes"],
        confident_threshold=config["evaluate"]["confident_threshold"],
        binomial_answer=config["train"]["binomial_answer"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


rule plot_run:
    input:
        predictions="results/{run}/test_predictions.h5",
        coverage="results/{run}/evaluation/coverage.csv",
        pit="results/{run}/evaluation/pit.csv",
        history="results/{run}/history.csv",
        summary="results/{run}/evaluation/summary.json",
        images=f"{DATA}/images.h5",
        tree=TREE,
        library=library("plot_run"),
    output:
        coverage=report(
            "results/{run}/figures/coverage.png",
            caption="../report/coverage.rst",
            category="Calibration",
            subcategory="{run}",
        ),
        pit=report(
            "results/{run}/figures/pit.png",
            caption="../report/pit.rst",
            category="Calibration",
            subcategory="{run}",
        ),
        posteriors=report(
            "results/{run}/figures/posteriors.png",
            caption="../report/posteriors.rst",
            category="Posteriors",
            subcategory="{run}",
        ),
        training=report(
            "results/{run}/figures/training.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="{run}",
        ),
        summary_table=report(
            "results/{run}/evaluation/summary.html",
            caption="../report/evaluation.rst",
            category="Evaluation",
            subcategory="{run}",
        ),
    log:
        "logs/{run}/plot.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        binomial_answer=config["train"]["binomial_answer"],
        seed=config["seed"],
    script:
        "../scripts/plot_run.py"


rule full:
    input:
        run_products("full"),
        expand("results/full/{split}_posteriors.parquet", split=SPLITS),
        release_products("full", SPLITS),
        representation_products("full"),
        explorer_products("full"),
