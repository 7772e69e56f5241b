# The decision tree in use (schema.tree) with its question suffix, written once: every step
# reads this file, so a changed tree or suffix reruns exactly the steps that read it.
rule resolve_tree:
    input:
        tree=tree_file(),
        library=library("resolve_tree"),
    output:
        tree=TREE,
    log:
        "logs/resolve_tree.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        question_suffix=verbatim(config["schema"]["question_suffix"]),
    script:
        "../scripts/resolve_tree.py"
