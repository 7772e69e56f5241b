# zooflow: Galaxy Zoo votes and images -> Bayesian morphology posteriors -> what to label next.
import os

from snakemake.utils import min_version, validate

from zooflow.configuration import check_settings, readable_yaml, type_by_schema
from zooflow.summary import run_summary

min_version("9.0")


# Anchored to the workflow, so a run in another folder (--directory) still starts from it.
configfile: readable_yaml(os.path.join(workflow.basedir, "config", "config.yaml"))


report: "report/workflow.rst"


type_by_schema(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
validate(config, "config/schema.yaml")
check_settings(config)


include: "rules/common.smk"
include: "rules/tree.smk"
include: "rules/simulate.smk"
include: "rules/ingest.smk"
include: "rules/preprocess.smk"
include: "rules/split.smk"
include: "rules/shards.smk"
include: "rules/pretrain.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/representations.smk"
include: "rules/evaluate.smk"
include: "rules/finetune.smk"
include: "rules/active_learning.smk"
include: "rules/explorer.smk"


rule all:
    default_target: True
    input:
        data_products(),
        main_products(),


onsuccess:
    print(
        run_summary(
            config, workflow.dag_settings.targets, workflow.overwrite_configfiles
        )
    )
