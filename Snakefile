# stf: raw skeleton files -> parquet -> MS-G3D and STF models -> results/report.md.
# `snakemake --cores N` builds everything; params.yaml is the only configuration.
# dvc.yaml holds the same stages (tests/test_workflow.py checks that they agree).

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    input:
        "results/report.md",
