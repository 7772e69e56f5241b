rule start_rounds:
    input:
        splits=f"{DATA}/splits.csv",
        catalogue=f"{DATA}/catalogue.parquet",
        tree=TREE,
        library=library("start_rounds"),
    output:
        labelled=f"{AL}/round_0/labelled.csv",
        unlabelled=f"{AL}/round_0/unlabelled.csv",
    log:
        f"logs/{ROUNDS}/start.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        oracle=config["active_learning"]["oracle"],
    script:
        "../scripts/start_rounds.py"


# With several prediction groups, a strategy that scores each galaxy from its own predictions
# scores the pool one group at a time, in parallel jobs; acquire then ranks the parts together.
rule score_group:
    input:
        part=f"{AL}/round_{{round}}/predictions/group_{{group}}",
        calibration=round_calibration_file,
        tree=TREE,
        library=library("score_group"),
    output:
        scores=temp(f"{AL}/round_{{round}}/scores/group_{{group}}.parquet"),
    log:
        f"logs/{ROUNDS}/round_{{round}}/score_{{group}}.log",
    benchmark:
        f"results/benchmarks/{ROUNDS}/round_{{round}}/score_{{group}}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        expected_votes=config["active_learning"]["expected_votes"],
        question_weights=config["active_learning"]["question_weights"],
        information=config["active_learning"]["information"],
        draws_per_sample=config["active_learning"]["draws_per_sample"],
        seed=acquisition_seed,
    script:
        "../scripts/score_group.py"


rule acquire:
    input:
        unpack(pool_scores),
        unlabelled=f"{AL}/round_{{round}}/unlabelled.csv",
        catalogue=f"{DATA}/catalogue.parquet",
        tree=TREE,
        library=library("acquire"),
    output:
        scores=f"{AL}/round_{{round}}/scores.csv",
        acquired=f"{AL}/round_{{round}}/acquired.csv",
    log:
        f"logs/{ROUNDS}/round_{{round}}/acquire.log",
    benchmark:
        f"results/benchmarks/{ROUNDS}/round_{{round}}/acquire.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        n_acquire=config["active_learning"]["acquire_per_round"],
        expected_votes=config["active_learning"]["expected_votes"],
        question_weights=config["active_learning"]["question_weights"],
        information=config["active_learning"]["information"],
        draws_per_sample=config["active_learning"]["draws_per_sample"],
        epig_targets=config["active_learning"]["epig_targets"],
        seed=acquisition_seed,
    script:
        "../scripts/acquire.py"


rule reveal:
    input:
        unpack(oracle_inputs),
        labelled=lambda wildcards: f"{round_dir(wildcards, -1)}/labelled.csv",
        unlabelled=lambda wildcards: f"{round_dir(wildcards, -1)}/unlabelled.csv",
        tree=TREE,
        library=library("reveal"),
    output:
        labelled=f"{AL}/round_{{round}}/labelled.csv",
        unlabelled=f"{AL}/round_{{round}}/unlabelled.csv",
    log:
        main=f"logs/{ROUNDS}/round_{{round}}/reveal.log",
        # Campaign votes refused, with ingest's reasons; a log, so it survives a failed job.
        rejected=f"logs/{ROUNDS}/round_{{round}}/rejected_votes.csv",
    wildcard_constraints:
        round=r"[1-9]\d*",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        oracle=config["active_learning"]["oracle"],
        tree_tolerance=config["ingest"]["tree_tolerance"],
        tree_tolerance_votes=config["ingest"]["tree_tolerance_votes"],
        max_rejected_fraction=config["ingest"]["max_rejected_fraction"],
    script:
        "../scripts/reveal.py"


rule to_label:
    input:
        acquired=lambda wildcards: (
            f"results/al/{config['active_learning']['strategies'][0]}/"
            f"seed_{config['active_learning']['seeds'][0]}/round_{wildcards.round}/acquired.csv"
        ),
    output:
        to_label=f"{CAMPAIGN}/round_{{round}}/to_label.csv",
    log:
        f"logs/campaign/round_{{round}}/to_label.log",
    wildcard_constraints:
        round=unpublished_round(),
    localrule: True
    conda:
        "../envs/data.yaml"
    shell:
        "cp {input.acquired} {output.to_label} 2> {log}"


rule learning_curves:
    input:
        evaluations=lambda wildcards: expand(
            "results/{run}/evaluation/{table}",
            run=al_runs(),
            table=["summary.json", "regression.csv", "questions.csv"],
        ),
        histories=lambda wildcards: expand("results/{run}/history.csv", run=al_runs()),
        labelled=lambda wildcards: expand("results/{run}/labelled.csv", run=al_runs()),
        # Every round acquires but the last.
        acquired=lambda wildcards: [
            f"{record['folder']}/acquired.csv"
            for record in al_rounds()
            if record["round"] != config["active_learning"]["rounds"] - 1
        ],
        catalogue=f"{DATA}/catalogue.parquet",
        tree=TREE,
        library=library("learning_curves"),
    output:
        curves="results/al/learning_curves.csv",
        saved="results/al/labels_saved.json",
        by_budget="results/al/labels_saved_by_budget.csv",
        composition="results/al/acquisition_composition.csv",
        figure=report(
            "results/al/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Active learning",
            subcategory="Learning curves and labels saved",
        ),
        by_budget_figure=report(
            "results/al/labels_saved_by_budget.png",
            caption="../report/labels_saved_by_budget.rst",
            category="Active learning",
            subcategory="Learning curves and labels saved",
        ),
        composition_figure=report(
            "results/al/acquisition_composition.png",
            caption="../report/acquisition_composition.rst",
            category="Active learning",
            subcategory="What each strategy acquired",
        ),
        curves_table=report(
            "results/al/tables/learning_curves.html",
            caption="../report/tables.rst",
            category="Active learning",
            subcategory="Tables",
        ),
        saved_table=report(
            "results/al/tables/labels_saved.html",
            caption="../report/tables.rst",
            category="Active learning",
            subcategory="Tables",
        ),
        by_budget_table=report(
            "results/al/tables/labels_saved_by_budget.html",
            caption="../report/tables.rst",
            category="Active learning",
            subcategory="Tables",
        ),
    log:
        "logs/al/learning_curves.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        # The rounds as records (strategy, seed, round, folder), not paths to parse.
        runs=lambda wildcards: al_rounds(),
        baseline=config["active_learning"]["baseline"],
    script:
        "../scripts/learning_curves.py"


rule gallery:
    input:
        scores=f"{AL}/round_{{round}}/scores.csv",
        images=f"{DATA}/images.h5",
        library=library("gallery"),
    output:
        gallery=report(
            f"{AL}/round_{{round}}/gallery.png",
            caption="../report/gallery.rst",
            category="Active learning",
            subcategory="{strategy} seed {seed} round {round}",
        ),
    log:
        f"logs/{ROUNDS}/round_{{round}}/gallery.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        n_galaxies=8,
    script:
        "../scripts/gallery.py"
