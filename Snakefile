# stf: raw skeleton files -> parquet -> MS-G3D and STF models -> results/report.md.
# `snakemake --cores N` builds everything; params.yaml is the only configuration.
# The rules read the pipeline description in src/stf/pipeline.py, from which
# `stf dvc-yaml` also writes dvc.yaml (docs/pipeline.md).
from snakemake.utils import min_version

min_version("9.0")


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
