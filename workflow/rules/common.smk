# Shared by the .smk files: params validation through stf's typed config, the pipeline
# description (src/stf/pipeline.py) and the input functions that read it.
#
# Every rule takes its inputs, outputs, log, command and tracked params from the description;
# `stf dvc-yaml` writes dvc.yaml from the same description, so the two tools cannot disagree.
from snakemake.exceptions import WorkflowError

from stf.config import ParamsError, parse_params
from stf.pipeline import Pipeline, PipelineError

# The typed config validates params.yaml (unknown keys and wrong types are errors) and its
# message is one line naming the key, as the `stf` commands print it.
try:
    PIPELINE = Pipeline(parse_params(config, "params.yaml"))
except (ParamsError, PipelineError) as err:
    raise WorkflowError(f"stf: error: {err}") from None

# CPU threads of a training job: the profile's torch threads (0 = torch's default: all cores;
# Snakemake then reserves 8)
THREADS = lookup(dpath=f"profiles/{config['profile']}/threads", within=config) or 8


def job_inputs(stage):
    """Input function of `stage`'s rule: the job's named inputs (data, models, code files)."""
    return lambda wildcards: PIPELINE.job(stage, wildcards).named_inputs


def job_command(stage):
    """The job's `stf` command (dvc.yaml runs the same string)."""
    return lambda wildcards: PIPELINE.job(stage, wildcards).cmd


def job_params(stage):
    """{key: value} of the params.yaml keys the job reads: Snakemake reruns the job when one of
    these values changes (dvc.yaml lists the same keys)."""
    return lambda wildcards: {
        key: lookup(dpath=key.replace(".", "/"), within=config) for key in PIPELINE.job(stage, wildcards).params
    }
